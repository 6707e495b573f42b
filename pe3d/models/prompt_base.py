"""Shared pieces of the prompt encoders ``E_p``: config, output type, base class, mapper, weight loading.

``E_p`` turns a prompt ``P`` (text or a reference image) into a sequence of tokens that the
cross-attention after ``E_high`` uses as keys and values (paper Sec. 3.2, Eq. 2). The paper uses
CLIP's text transformer for text and an MAE ViT-B/16 for images; both are wrapped here as a
pretrained *backbone* followed by a small token *mapper* to the cross-attention width ``out_dim``.

Weights are only ever read from local files or an existing local cache; nothing here downloads.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

PROMPT_KINDS: Tuple[str, ...] = ("text", "image")
"""Accepted values of :attr:`PromptEncoderConfig.kind`."""
TRAIN_MODES: Tuple[str, ...] = ("full", "mapper")
"""Accepted values of :attr:`PromptEncoderConfig.train`."""
MAPPER_KINDS: Tuple[str, ...] = ("none", "linear", "mlp")
"""Accepted values of :attr:`PromptEncoderConfig.mapper`."""
DEFAULT_ARCH: Dict[str, str] = {"text": "ViT-L-14", "image": "vit_base_patch16_224.mae"}
"""Backbone used when ``arch`` is not given: CLIP ViT-L/14's text tower, MAE ViT-B/16."""
WEIGHT_SUFFIXES: Tuple[str, ...] = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
"""File suffixes that make a ``pretrained`` string a path rather than a tag."""


@dataclass
class PromptEncoderConfig:
    """Typed config of one prompt encoder ``E_p``.

    Attributes:
        kind: ``'text'`` (CLIP text tower from open_clip) or ``'image'`` (a timm ViT, MAE by default).
        arch: open_clip model name for text (``'ViT-L-14'``, ``'ViT-B-16'``, ...) or timm model name
            for images (``'vit_base_patch16_224.mae'``). ``None`` picks :data:`DEFAULT_ARCH` of ``kind``.
        pretrained: where the backbone weights come from; ``None`` keeps a random init. Either a local
            file (``.safetensors``/``.bin``/``.pt``/``.pth``/``.ckpt``, or any string with a path
            separator), a pretrained *tag* of ``arch`` (open_clip tag such as ``'openai'``; timm tag such
            as ``'mae'``) or ``'hf-hub:org/name'``. Tags are resolved in local caches only; a missing file
            raises ``FileNotFoundError`` naming every place looked.
        tiny: overrides that build a small backbone from config, for CPU tests. Text: fields of
            ``open_clip.CLIPTextCfg`` (``width``, ``layers``, ``heads``, ``context_length``, ...) plus
            ``embed_dim`` (width of the text projection kept for checkpoint compatibility). Image: keyword
            arguments of ``timm.create_model`` (``img_size``, ``patch_size``, ``embed_dim``, ``depth``,
            ``num_heads``, ...).
        out_dim: width ``D`` of the tokens handed to cross-attention.
        train: ``'full'`` trains backbone and mapper; ``'mapper'`` freezes the backbone (``requires_grad``
            off, kept in eval mode, run without autograd) and trains only the mapper.
        mapper: token mapper after the backbone: ``'none'`` (identity; needs backbone width == ``out_dim``
            and ``train='full'``), ``'linear'`` or ``'mlp'`` (residual MLP whose last layer starts at zero,
            so at init it equals its skip path: the identity when widths match).
        mapper_hidden: hidden width of the ``'mlp'`` mapper; ``None`` uses ``max(backbone width, out_dim)``.
        max_length: text only: tokens per prompt ``L`` including start/end tokens; ``None`` uses the text
            tower's context length (77 for CLIP). Longer prompts are truncated with a warning.
        quick_gelu: text only: QuickGELU activations (OpenAI CLIP weights need them). ``None`` takes the
            value from the pretrained tag's config, else from the open_clip model config.
        cache_dir: when given, the only directory searched for tagged weights (Hugging Face cache layout
            or a flat file named like the download); otherwise the default Hugging Face, open_clip and
            torch-hub caches are searched.
        frozen: with ``train='full'``, backbone parameter name prefixes that stay frozen anyway (e.g.
            ``['token_embedding']``: a tiny random text tower's embedding table is most of its parameters
            and costs every optimiser step; the layers above it learn to read its fixed vectors).
        token_vectors: text only, a tower without ``pretrained`` weights: a token-vector file
            (:mod:`pe3d.models.lexicon`; a path or ``shipped:NAME``) whose rows replace those of the random
            token table at construction, e.g. WordNet word vectors that give words never seen in
            training a meaning (``shipped:lexicon_mini``). A checkpoint loaded later overwrites them.
        token_vectors_mix: with ``token_vectors``, the share of each written row that is the file's
            vector; the rest is a fixed random vector of the row's own
            (:func:`pe3d.models.lexicon.blend_with_random`), so a trained word keeps a part its WordNet
            neighbours do not share. ``1.0`` (default) writes the file's vectors as they are.
        token_vectors_seed: seed of that random part.
        resize_antialias: image only: antialias when resizing reference images to the ViT's input size
            (``False`` reproduces the 3DPE code, whose torchvision 0.14 ``Resize`` on tensors does not).
    """

    kind: str = "text"
    arch: Optional[str] = None
    pretrained: Optional[str] = None
    tiny: Optional[Dict[str, Any]] = None
    out_dim: int = 768
    train: str = "full"
    mapper: str = "mlp"
    mapper_hidden: Optional[int] = None
    max_length: Optional[int] = None
    quick_gelu: Optional[bool] = None
    cache_dir: Optional[str] = None
    resize_antialias: bool = True
    frozen: Optional[List[str]] = None
    token_vectors: Optional[str] = None
    token_vectors_mix: float = 1.0
    token_vectors_seed: int = 7

    def __post_init__(self) -> None:
        if self.kind not in PROMPT_KINDS:
            raise ValueError(f"prompt_encoder.kind must be one of {PROMPT_KINDS}, got {self.kind!r}")
        if self.train not in TRAIN_MODES:
            raise ValueError(f"prompt_encoder.train must be one of {TRAIN_MODES}, got {self.train!r}")
        if self.mapper not in MAPPER_KINDS:
            raise ValueError(f"prompt_encoder.mapper must be one of {MAPPER_KINDS}, got {self.mapper!r}")
        if self.mapper == "none" and self.train == "mapper":
            raise ValueError("prompt_encoder.train='mapper' needs a trainable mapper; mapper='none' has none")
        if self.out_dim <= 0:
            raise ValueError(f"prompt_encoder.out_dim must be positive, got {self.out_dim}")
        if self.mapper_hidden is not None and self.mapper_hidden <= 0:
            raise ValueError(f"prompt_encoder.mapper_hidden must be positive, got {self.mapper_hidden}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"prompt_encoder.max_length must be >= 2 (start + end token), got {self.max_length}")
        if self.token_vectors is not None and self.kind != "text":
            raise ValueError(f"prompt_encoder.token_vectors is for text towers; this one is kind={self.kind!r}")
        if self.token_vectors is not None and self.pretrained is not None:
            raise ValueError(
                "prompt_encoder.token_vectors replaces rows of a random token table; "
                f"with pretrained={self.pretrained!r} the tower has a trained one: set only one of them"
            )
        if not 0.0 < self.token_vectors_mix <= 1.0:
            raise ValueError(f"prompt_encoder.token_vectors_mix must be in (0, 1], got {self.token_vectors_mix}")
        if self.token_vectors_mix != 1.0 and self.token_vectors is None:
            raise ValueError(
                f"prompt_encoder.token_vectors_mix={self.token_vectors_mix} blends the rows of a token-vector "
                "file; set prompt_encoder.token_vectors too"
            )
        if self.arch is None:
            self.arch = DEFAULT_ARCH[self.kind]
        if self.tiny is not None:
            self.tiny = dict(self.tiny)  # a plain dict even when it came from OmegaConf

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "PromptEncoderConfig":
        """Build from a dict / OmegaConf ``DictConfig``; unknown keys raise ``ValueError`` naming them."""
        if isinstance(values, cls):
            return values
        try:  # OmegaConf containers -> plain python
            from omegaconf import DictConfig, OmegaConf

            if isinstance(values, DictConfig):
                values = OmegaConf.to_container(values, resolve=True)  # type: ignore[assignment]
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            pass
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown prompt_encoder key(s) {unknown}; valid keys: {sorted(known)}")
        return cls(**dict(values))


@dataclass
class PromptTokens:
    """Output of a prompt encoder.

    Attributes:
        tokens: ``[B, L, D]`` float token features (``D = out_dim``), keys/values for cross-attention.
        mask: ``[B, L]`` bool, ``True`` where a token is valid (text: start token .. end token; image:
            all ``True``). Padding positions still hold finite features.
    """

    tokens: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        if self.tokens.dim() != 3:
            raise ValueError(f"PromptTokens.tokens must be [B, L, D], got shape {tuple(self.tokens.shape)}")
        if self.mask.shape != self.tokens.shape[:2] or self.mask.dtype != torch.bool:
            raise ValueError(
                f"PromptTokens.mask must be bool [B, L] = {tuple(self.tokens.shape[:2])}, "
                f"got {self.mask.dtype} {tuple(self.mask.shape)}"
            )

    @property
    def batch_size(self) -> int:
        """``B``."""
        return self.tokens.shape[0]

    def to(self, device: torch.device | str) -> "PromptTokens":
        """Both tensors moved to ``device``."""
        return PromptTokens(self.tokens.to(device), self.mask.to(device))


# ----------------------------------------------------------------------------------------------
# Token mapper


class TokenMapper(nn.Module):
    """Per-token map from the backbone width to ``out_dim``: ``[B, L, in_dim] -> [B, L, out_dim]``.

    ``kind='none'``: identity (``in_dim == out_dim``). ``'linear'``: one ``nn.Linear``.
    ``'mlp'``: ``skip(x) + Linear(GELU(Linear(LayerNorm(x))))`` where ``skip`` is the identity when
    ``in_dim == out_dim`` and a bias-free linear map otherwise; the last layer starts at zero, so a fresh
    mapper equals its skip path (pretrained features pass through unchanged when widths match).
    """

    def __init__(self, in_dim: int, out_dim: int, kind: str = "mlp", hidden: Optional[int] = None) -> None:
        super().__init__()
        if kind not in MAPPER_KINDS:
            raise ValueError(f"mapper kind must be one of {MAPPER_KINDS}, got {kind!r}")
        self.kind = kind
        self.in_dim, self.out_dim = in_dim, out_dim
        self.mlp: Optional[nn.Sequential] = None
        if kind == "none":
            if in_dim != out_dim:
                raise ValueError(
                    f"mapper='none' needs backbone width == out_dim, got {in_dim} != {out_dim}; "
                    "use mapper='linear' or 'mlp'"
                )
            self.skip: nn.Module = nn.Identity()
        elif kind == "linear":
            self.skip = nn.Linear(in_dim, out_dim)
        else:
            self.skip = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim, bias=False)
            hidden = hidden or max(in_dim, out_dim)
            self.mlp = nn.Sequential(
                nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)
            )
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[B, L, in_dim]`` -> ``[B, L, out_dim]``."""
        y = self.skip(x)
        if self.mlp is not None:
            y = y + self.mlp(x)
        return y


# ----------------------------------------------------------------------------------------------
# Base class


class PromptEncoder(nn.Module, abc.ABC):
    """Base of the prompt encoders ``E_p``: a pretrained ``backbone`` plus a trainable ``mapper``.

    Subclasses implement :meth:`_encode_backbone` (prompts -> backbone tokens ``[B, L, C]`` and mask)
    and :meth:`_load_backbone_state_dict`. ``encode(prompts)`` (also ``forward``) returns
    :class:`PromptTokens` with ``tokens [B, L, out_dim]``.
    """

    backbone: nn.Module
    mapper: TokenMapper

    def __init__(self, cfg: PromptEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg

    # -- to implement -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def backbone_dim(self) -> int:
        """Width ``C`` of the backbone tokens (before the mapper)."""

    @abc.abstractmethod
    def _encode_backbone(self, prompts: Any) -> Tuple[Tensor, Tensor]:
        """Prompts -> (backbone tokens ``[B, L, C]``, bool mask ``[B, L]``)."""

    @abc.abstractmethod
    def _load_backbone_state_dict(self, state_dict: Dict[str, Tensor], source: str) -> None:
        """Load a raw checkpoint state dict (as read from ``source``) into ``self.backbone``, strictly."""

    def _unused_backbone_parameters(self) -> Tuple[str, ...]:
        """Names (relative to ``backbone``) of parameters kept only for checkpoint compatibility."""
        return ()

    # -- shared -------------------------------------------------------------------------------
    def _finish_init(self) -> None:
        """Create the mapper and apply the train mode; call at the end of a subclass ``__init__``."""
        self.mapper = TokenMapper(self.backbone_dim, self.cfg.out_dim, self.cfg.mapper, self.cfg.mapper_hidden)
        for name in self._unused_backbone_parameters():
            self.backbone.get_parameter(name).requires_grad_(False)
        if self.frozen_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @property
    def out_dim(self) -> int:
        """Width ``D`` of the output tokens."""
        return self.cfg.out_dim

    @property
    def kind(self) -> str:
        """``'text'`` or ``'image'``."""
        return self.cfg.kind

    @property
    def frozen_backbone(self) -> bool:
        """True in ``train='mapper'`` mode."""
        return self.cfg.train == "mapper"

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    def encode(self, prompts: Any) -> PromptTokens:
        """Encode a batch of prompts into cross-attention tokens.

        Args:
            prompts: text encoder: ``list[str]`` (or one ``str``) of ``B`` prompts; image encoder:
                float images ``[B, 3, H, W]`` in ``[0, 1]``.

        Returns:
            :class:`PromptTokens` with ``tokens [B, L, out_dim]`` and ``mask [B, L]``.
        """
        grad = torch.is_grad_enabled() and not self.frozen_backbone
        with torch.set_grad_enabled(grad):
            feats, mask = self._encode_backbone(prompts)
        return PromptTokens(self.mapper(feats), mask)

    def forward(self, prompts: Any) -> PromptTokens:
        """Same as :meth:`encode`."""
        return self.encode(prompts)

    def named_trainable_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs trained under ``cfg.train`` (names relative to this module).

        ``'mapper'``: only ``mapper.*``. ``'full'``: everything except backbone parameters the token
        output never uses (e.g. CLIP's pooled ``text_projection``).
        """
        if self.frozen_backbone:
            for name, p in self.mapper.named_parameters():
                yield f"mapper.{name}", p
            return
        unused = {f"backbone.{n}" for n in self._unused_backbone_parameters()}
        frozen = tuple(f"backbone.{prefix}" for prefix in self.cfg.frozen or ())
        for name, p in self.named_parameters():
            if name not in unused and not name.startswith(frozen):
                yield name, p

    def trainable_parameters(self) -> List[nn.Parameter]:
        """Parameters to hand to the optimizer under ``cfg.train`` (see :meth:`named_trainable_parameters`)."""
        return [p for _, p in self.named_trainable_parameters()]

    def train(self, mode: bool = True) -> "PromptEncoder":
        """Like ``nn.Module.train`` but a frozen backbone stays in eval mode."""
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def load_backbone(self, pretrained: str) -> None:
        """Load backbone weights from a local file, tag or ``hf-hub:`` name (see ``PromptEncoderConfig``)."""
        path = self.resolve_pretrained(pretrained)
        self._load_backbone_state_dict(read_state_dict(path), str(path))

    def resolve_pretrained(self, pretrained: str) -> Path:
        """Turn ``pretrained`` into an existing local file; raise ``FileNotFoundError`` otherwise."""
        if looks_like_path(pretrained):
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise FileNotFoundError(
                    f"{self.kind} prompt encoder: pretrained weights file not found: {path} "
                    f"(resolved: {path.resolve()})"
                )
            return path
        return self._resolve_tag(pretrained)

    def find_hf_hub_file(self, tag: str, filenames: Sequence[str], what: str) -> Path:
        """Local file of an ``hf-hub:org/name`` tag in the Hugging Face cache (never downloads)."""
        cache_dirs: List[Optional[str]] = [self.cfg.cache_dir] if self.cfg.cache_dir else [None]
        looked: List[str] = []
        found = find_in_hf_cache(tag[len("hf-hub:"):].strip("/"), filenames, cache_dirs, looked)
        if found is None:
            raise not_found_error(f"{what} {tag!r}", looked)
        return found

    @abc.abstractmethod
    def _resolve_tag(self, tag: str) -> Path:
        """Find the local file of a pretrained tag / ``hf-hub:`` name; never downloads."""


# ----------------------------------------------------------------------------------------------
# Reading and checking weights


class StateDictMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not match the module it is loaded into.

    Attributes:
        missing: keys the module needs that the checkpoint lacks.
        unexpected: checkpoint keys the module does not have.
        mismatched: ``(key, expected shape, checkpoint shape)`` triples.
    """

    def __init__(
        self,
        source: str,
        what: str,
        missing: Sequence[str],
        unexpected: Sequence[str],
        mismatched: Sequence[Tuple[str, Tuple[int, ...], Tuple[int, ...]]],
        note: str = "",
    ) -> None:
        self.source, self.what = source, what
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)
        lines = [f"checkpoint {source} does not match {what}:"]
        if self.missing:
            lines.append(f"  missing keys ({len(self.missing)}): {_fmt_keys(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected keys ({len(self.unexpected)}): {_fmt_keys(self.unexpected)}")
        for key, want, got in self.mismatched:
            lines.append(f"  shape mismatch for {key}: model {list(want)}, checkpoint {list(got)}")
        if note:
            lines.append(f"  {note}")
        super().__init__("\n".join(lines))


def _fmt_keys(keys: Sequence[str], limit: int = 40) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def looks_like_path(pretrained: str) -> bool:
    """True when ``pretrained`` names a file (weight suffix, path separator, ``~`` or ``.`` start)."""
    if pretrained.startswith("hf-hub:"):
        return False
    return (
        pretrained.lower().endswith(WEIGHT_SUFFIXES)
        or "/" in pretrained
        or os.sep in pretrained
        or pretrained.startswith(("~", "."))
        or Path(pretrained).is_file()
    )


def read_state_dict(path: str | os.PathLike) -> Dict[str, Tensor]:
    """Read a flat ``{key: tensor}`` dict from a ``.safetensors`` file or a torch file (``weights_only``).

    Torch files may wrap the dict under ``'state_dict'`` or ``'model'`` (Lightning, official MAE) and may
    prefix every key with ``'module.'`` (DDP); both are undone. Raises ``ValueError`` for files that are
    not plain tensor dicts (e.g. TorchScript archives or pickled objects).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as err:  # noqa: BLE001 - SafetensorError is not a ValueError; re-raised with the file name
            raise ValueError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from err
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(
            f"could not read {path} as a plain state dict with torch.load(weights_only=True) "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). TorchScript archives "
            "and pickled objects are not loaded; save `model.state_dict()` instead"
        ) from err
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: state dict entries that are not tensors: {_fmt_keys([str(k) for k in bad])}")
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_state_dict_strict(
    module: nn.Module, state_dict: Mapping[str, Tensor], source: str, what: str, note: str = ""
) -> None:
    """``module.load_state_dict(state_dict)`` after checking keys and shapes; raises :class:`StateDictMismatchError`."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, tuple(expected[k].shape), tuple(v.shape))
        for k, v in state_dict.items()
        if k in expected and tuple(expected[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(source, what, missing, unexpected, mismatched, note)
    module.load_state_dict(dict(state_dict), strict=True)


def find_in_hf_cache(
    repo_id: str, filenames: Sequence[str], cache_dirs: Sequence[Optional[str]], looked: List[str]
) -> Optional[Path]:
    """First of ``filenames`` of ``repo_id`` present in a local Hugging Face cache; never downloads.

    ``cache_dirs`` entries of ``None`` mean the default cache (``HF_HUB_CACHE``). Every place tried is
    appended to ``looked``.
    """
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:  # pragma: no cover - installed with timm
        looked.append(f"Hugging Face cache for {repo_id} (huggingface_hub not installed)")
        return None
    for cache_dir in cache_dirs:
        where = cache_dir if cache_dir is not None else constants.HF_HUB_CACHE
        for filename in filenames:
            looked.append(f"Hugging Face cache {where}: {repo_id}/{filename}")
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    return None


def find_flat_file(filename: str, dirs: Sequence[str], looked: List[str]) -> Optional[Path]:
    """``dir/filename`` for the first of ``dirs`` holding it; every place tried is appended to ``looked``."""
    for d in dirs:
        path = Path(d).expanduser() / filename
        looked.append(str(path))
        if path.is_file():
            return path
    return None


def not_found_error(what: str, looked: Sequence[str]) -> FileNotFoundError:
    """A ``FileNotFoundError`` naming every place looked."""
    places = "\n".join(f"  - {p}" for p in looked) or "  (nowhere)"
    return FileNotFoundError(
        f"{what} not found locally (pe3d never downloads weights). Looked in:\n{places}\n"
        "Put the file in one of these places, or set `pretrained` to the path of a local copy."
    )
