"""``CLIP_r``: alignment of an edited image with the prompt in CLIP space (paper Sec. 4.1).

The score is the cosine similarity between the CLIP image embedding of the edited image and the
CLIP embedding of the prompt: the text embedding for a text prompt, the image embedding for a
reference-image prompt. It is the raw cosine (torchmetrics' ``CLIPScore`` reports
``100 * max(cos, 0)``); text-image cosines of matching pairs are typically 0.25-0.35 and
image-image cosines 0.5-0.9, so compare numbers only within one prompt kind and one CLIP model.

The full open_clip model (both towers) is built from its config with random weights, then the
weights are read from a local file or an existing local cache and loaded strictly. Nothing is
downloaded; when no weights are found :class:`~pe3d.metrics.weights.MetricWeightsMissing` names
the model and every place searched. OpenAI's original ``.pt`` downloads are TorchScript archives
and are refused (no code is unpickled); use the Hugging Face copies of the ``openai`` tag
(e.g. ``timm/vit_base_patch32_clip_224.openai``), which the ``openai`` tag looks for first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from pe3d.metrics.face_identity import check_images
from pe3d.metrics.weights import MetricWeightsMissing
from pe3d.models.prompt_base import load_state_dict_strict, looks_like_path, read_state_dict
from pe3d.models.prompt_text import IGNORED_CLIP_KEYS, find_open_clip_tag_file

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""CLIP's image normalisation mean (open_clip's default)."""
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
"""CLIP's image normalisation standard deviation (open_clip's default)."""


def resolve_clip_weights(model_name: str, weights: Optional[str], cache_dir: Optional[str] = None) -> tuple[Path, dict[str, Any]]:
    """The local weights file of ``model_name`` and the pretrained config of its tag (``{}`` for a plain file).

    ``weights``: a file path; an open_clip tag (``"openai"``, ``"laion2b_s34b_b79k"``, ...) or
    ``"hf-hub:org/name"`` looked up in local caches; or ``None`` to try every pretrained tag of the
    model in the local caches.

    Raises:
        MetricWeightsMissing: nothing found (names the model and every place searched).
    """
    import open_clip

    what = f"open_clip model {model_name!r}"
    looked: list[str] = []
    if weights is not None and looks_like_path(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MetricWeightsMissing(what, [str(path)])
        return path, {}
    tags = [weights] if weights is not None else open_clip.list_pretrained_tags_by_model(model_name)
    for tag in tags:
        found = find_open_clip_tag_file(model_name, tag, cache_dir, looked)
        if found is not None:
            return found, dict(open_clip.get_pretrained_cfg(model_name, tag) or {})
    hint = "Pass weights=<local file> (or a pretrained tag whose file is in the Hugging Face cache)"
    raise MetricWeightsMissing(what + (f" / {weights!r}" if weights else ""), looked, hint)


def build_clip_model(
    model_name: str, model_cfg: Optional[Mapping[str, Any]] = None, quick_gelu: Optional[bool] = None
) -> nn.Module:
    """A randomly initialised open_clip ``CLIP`` (or ``CustomTextCLIP``) from ``model_cfg`` or the named config;
    ``quick_gelu=None`` keeps the config's activation."""
    from open_clip.model import CLIP, CustomTextCLIP
    import open_clip

    cfg = dict(model_cfg) if model_cfg is not None else open_clip.get_model_config(model_name)
    if cfg is None:
        raise ValueError(f"unknown open_clip model {model_name!r}; known: {', '.join(open_clip.list_models())}")
    cfg = dict(cfg)
    if dict(cfg.get("text_cfg", {})).get("hf_model_name"):
        raise ValueError(f"open_clip model {model_name!r} has a Hugging Face text tower, which needs a download; not supported")
    if "multimodal_cfg" in cfg:
        raise ValueError(f"open_clip model {model_name!r} is a CoCa model; CLIP_r needs a plain CLIP model")
    model_class = CustomTextCLIP if cfg.pop("custom_text", False) else CLIP
    config_quick_gelu = bool(cfg.pop("quick_gelu", False))
    quick_gelu = config_quick_gelu if quick_gelu is None else bool(quick_gelu)
    cfg.pop("preprocess_cfg", None)
    try:
        return model_class(**cfg, quick_gelu=quick_gelu)
    except TypeError as error:
        raise ValueError(f"open_clip model config of {model_name!r} has fields CLIP does not take: {error}") from None


def load_clip_model(
    model_name: str,
    weights: Optional[str] = None,
    cache_dir: Optional[str] = None,
    model_cfg: Optional[Mapping[str, Any]] = None,
    quick_gelu: Optional[bool] = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A frozen open_clip model with local weights (loaded strictly) and its pretrained config.

    ``quick_gelu=None`` takes the value of the pretrained tag (OpenAI weights need it) or of the model
    config. Weights are resolved before the model is built, so a missing file fails fast.
    """
    path, pretrained_cfg = resolve_clip_weights(model_name, weights, cache_dir)
    if quick_gelu is None and "quick_gelu" in pretrained_cfg:
        quick_gelu = bool(pretrained_cfg["quick_gelu"])
    model = build_clip_model(model_name, model_cfg, quick_gelu)
    state = {k: v for k, v in read_state_dict(path).items() if k not in IGNORED_CLIP_KEYS}
    load_state_dict_strict(model, state, str(path), f"open_clip model {model_name!r}")
    model.eval()
    model.requires_grad_(False)
    return model, pretrained_cfg


class ClipScore(Metric):
    """Mean CLIP cosine similarity between images and their prompts (``CLIP_r``).

    Args:
        model_name: open_clip model name (``"ViT-B-32"``, ``"ViT-L-14"``, ...); also names the tokenizer.
        weights: local file, open_clip tag or ``hf-hub:`` name (local caches only); ``None`` tries every
            pretrained tag of ``model_name`` in the local caches.
        cache_dir: the only cache searched for tags (Hugging Face cache layout or flat download folder).
        model_cfg: an open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...) used instead
            of ``model_name``'s, e.g. a tiny model in tests.
        quick_gelu: force QuickGELU on or off (``None``: from the tag / config).

    ``update(images, texts=...)`` or ``update(images, reference_images=...)``; ``compute()`` -> mean cosine.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    similarity_sum: Tensor
    count: Tensor

    def __init__(
        self,
        model_name: str,
        weights: Optional[str] = None,
        cache_dir: Optional[str] = None,
        model_cfg: Optional[Mapping[str, Any]] = None,
        quick_gelu: Optional[bool] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        import open_clip

        self.model_name = model_name
        self.model, pretrained_cfg = load_clip_model(model_name, weights, cache_dir, model_cfg, quick_gelu)
        preprocess = {**dict((model_cfg or {}).get("preprocess_cfg", {})), **pretrained_cfg}
        self.register_buffer("pixel_mean", torch.tensor(preprocess.get("mean", OPENAI_MEAN)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(preprocess.get("std", OPENAI_STD)).view(1, 3, 1, 1), persistent=False)
        size = self.model.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        try:
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except OSError as error:  # a Hugging Face tokenizer that is not in the local cache
            raise MetricWeightsMissing(f"tokenizer of open_clip model {model_name!r}", [str(error).splitlines()[0]]) from None
        self.add_state("similarity_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def train(self, mode: bool = True) -> "ClipScore":
        """The CLIP model always stays in eval mode."""
        super().train(mode)
        self.model.eval()
        return self

    def _clip_input(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in ``[0, 1]`` -> CLIP input: shorter side resized (bicubic), centre crop, normalised."""
        height, width = images.shape[-2:]
        target_h, target_w = self.image_size
        scale = max(target_h / height, target_w / width)
        size = (max(target_h, round(height * scale)), max(target_w, round(width * scale)))
        x = F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
        top, left = (size[0] - target_h) // 2, (size[1] - target_w) // 2
        x = x[:, :, top : top + target_h, left : left + target_w].clamp(0, 1)
        return (x - self.pixel_mean) / self.pixel_std

    @torch.no_grad()
    def encode_images(self, images: Tensor) -> Tensor:
        """Unit-length CLIP image embeddings ``[B, D]`` of ``[B, 3, H, W]`` images in ``[0, 1]``."""
        device = self.pixel_mean.device
        return F.normalize(self.model.encode_image(self._clip_input(images.to(device))).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        """Unit-length CLIP text embeddings ``[B, D]``."""
        ids = self.tokenizer(list(texts), context_length=self.model.context_length).to(self.pixel_mean.device)
        return F.normalize(self.model.encode_text(ids).float(), dim=-1)

    def update(
        self,
        images: Tensor,
        texts: Optional[Sequence[str] | str] = None,
        reference_images: Optional[Tensor] = None,
    ) -> None:
        """Add ``images`` ``[B, 3, H, W]`` in ``[0, 1]`` scored against ``texts`` (``B`` strings, or one for all)
        or ``reference_images`` (``[B, 3, H', W']``, or one ``[1, 3, H', W']`` for all); exactly one of the two."""
        check_images(images, "images")
        count = images.shape[0]
        if (texts is None) == (reference_images is None):
            raise ValueError("ClipScore.update needs exactly one prompt kind: texts=... or reference_images=...")
        if texts is not None:
            texts = [texts] if isinstance(texts, str) else list(texts)
            if len(texts) not in (1, count) or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ValueError(f"texts must be 1 or {count} non-empty strings, got {len(texts)}")
            prompts = self.encode_texts(texts)
        else:
            check_images(reference_images, "reference_images")  # type: ignore[arg-type]
            if reference_images.shape[0] not in (1, count):  # type: ignore[union-attr]
                raise ValueError(f"reference_images must hold 1 or {count} images, got {reference_images.shape[0]}")  # type: ignore[union-attr]
            prompts = self.encode_images(reference_images)  # type: ignore[arg-type]
        cosine = (self.encode_images(images) * prompts).sum(dim=-1)
        self.similarity_sum += cosine.double().sum().to(self.similarity_sum.device)
        self.count += count

    def compute(self) -> Tensor:
        """Mean cosine similarity over all scored images (NaN before any update)."""
        if int(self.count) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.similarity_sum / self.count
