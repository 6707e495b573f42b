"""The 3DPE editor core (paper Sec. 3.2, Eqs. 1-3), a plain ``nn.Module``::

    F_g = E_low(I)
    F_a = crossatt(E_high(I), E_p(P))        query: E_high tokens, keys/values: prompt tokens
    T_p = E_t(F_a, F_g)
    I_p, D_p = R(T_p, c)

It is initialised from a trained prior (:class:`~pe3d.models.prior.PriorModel`); the
cross-attention output projection starts at zero, so an untrained editor reproduces
the prior exactly. Prompts may be text, reference images, or both, per batch item.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from pe3d.models.cross_attention import PromptCrossAttention, PromptCrossAttentionConfig
from pe3d.models.prior import PriorModel, PriorModelConfig
from pe3d.models.prompt_base import PromptEncoderConfig, PromptTokens
from pe3d.prompt_vocabulary import PromptVocabulary
from pe3d.rendering.renderer import RenderOutput


@dataclass
class PromptEncodersConfig:
    """``E_p`` for text and/or reference images; ``None`` disables that prompt kind."""

    text: Optional[PromptEncoderConfig] = field(default_factory=lambda: PromptEncoderConfig(kind="text"))
    image: Optional[PromptEncoderConfig] = field(default_factory=lambda: PromptEncoderConfig(kind="image"))


@dataclass
class EditorConfig:
    """Everything needed to build an :class:`EditorCore` (the prior's sizes included)."""

    prior: PriorModelConfig = field(default_factory=PriorModelConfig)
    cross_attention: PromptCrossAttentionConfig = field(default_factory=PromptCrossAttentionConfig)
    prompt_encoder: PromptEncodersConfig = field(default_factory=PromptEncodersConfig)
    residual: bool = False
    """``True``: the editor's triplane is the frozen prior's reconstruction plus an edit,
    ``T_p = E_t^prior(F_h, F_g) + E_t(crossatt(F_h, E_p(P)), F_g)``; the prior's E_t is kept as a frozen
    ``base_decoder`` and the trained E_t (started with a zero output layer) predicts only what the edit
    changes, so "no edit" is the prior exactly. Costs one more E_t pass per edit. ``False``: E_t rebuilds
    the whole edited triplane (the paper's design)."""


@dataclass
class Prompts:
    """A batch of prompts: ``texts[i]`` (``None`` = no text for item i) and/or ``images [B,3,H,W]``
    with ``has_image [B]`` marking which rows hold a reference image."""

    texts: Optional[Sequence[Optional[str]]] = None
    images: Optional[Tensor] = None
    has_image: Optional[Tensor] = None

    def batch_size(self) -> int:
        """Number of items, checking that texts and images agree."""
        sizes = set()
        if self.texts is not None:
            sizes.add(len(self.texts))
        if self.images is not None:
            sizes.add(self.images.shape[0])
        if len(sizes) != 1:
            raise ValueError(f"prompts: give texts and/or images for the same batch size (got sizes {sorted(sizes)})")
        return sizes.pop()


TEXT_CACHE_SIZE = 16
"""How many prompt lists :class:`EditorCore` remembers the text tokens of at inference."""


def _build_prompt_encoder(cfg: PromptEncoderConfig) -> nn.Module:
    from pe3d.models.prompt_encoders import build_prompt_encoder

    return build_prompt_encoder(cfg)


class EditorCore(nn.Module):
    """Prompt-conditioned triplane encoder: ``forward(image, prompts) -> T_p``.

    Submodules: ``encoder`` (E_low, E_high, E_t: a copy of the prior's), ``renderer`` (R),
    ``cross_attention``, ``text_encoder`` / ``image_encoder`` (E_p; either may be absent).
    """

    def __init__(self, cfg: EditorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        prior = PriorModel(cfg.prior)
        self.encoder = prior.encoder
        self.renderer = prior.renderer
        channels = self.encoder.high_feature_channels
        if cfg.cross_attention.feature_channels != channels:
            raise ValueError(
                f"cross_attention.feature_channels={cfg.cross_attention.feature_channels} but the encoder's "
                f"E_high gives {channels} channels"
            )
        self.cross_attention = PromptCrossAttention(cfg.cross_attention)
        self.base_decoder: Optional[nn.Module] = None
        if cfg.residual:
            self.base_decoder = copy.deepcopy(self.encoder.decoder)  # the prior's E_t: loaded, then frozen
            self.base_decoder.requires_grad_(False)
        self.text_encoder = _build_prompt_encoder(cfg.prompt_encoder.text) if cfg.prompt_encoder.text else None
        self.image_encoder = _build_prompt_encoder(cfg.prompt_encoder.image) if cfg.prompt_encoder.image else None
        self._text_cache: dict[tuple, PromptTokens] = {}
        self.prompt_vocabulary: Optional[PromptVocabulary] = None
        """The words of the training prompts this editor was distilled on, per style (:func:`load_editor` reads
        them for the styles its file records); when set, a text prompt is read at inference (eval mode) with
        :meth:`~pe3d.prompt_vocabulary.PromptVocabulary.read`: an unseen word that begins with a known one is
        read as that word ("sketchbook" as "sketch book"), and in a prompt that holds no word of any one style
        the unseen word nearest a style's name in WordNet is read as that name ("ghoul" as "zombie").
        ``None``: prompts are read as written."""
        for name, enc in (("text", self.text_encoder), ("image", self.image_encoder)):
            if enc is not None and enc.out_dim != cfg.cross_attention.prompt_dim:
                raise ValueError(
                    f"prompt_encoder.{name}.out_dim={enc.out_dim} must equal cross_attention.prompt_dim="
                    f"{cfg.cross_attention.prompt_dim}"
                )

    @classmethod
    def from_prior(
        cls,
        prior: PriorModel,
        cross_attention: PromptCrossAttentionConfig,
        prompt_encoder: PromptEncodersConfig,
        residual: bool = False,
    ) -> "EditorCore":
        """An editor whose encoder and renderer start as copies of a trained ``prior`` (``residual``: see
        :attr:`EditorConfig.residual`; the prior's E_t becomes the frozen base and E_t's output starts at zero).

        The cross-attention reads ``f_high``, so its ``feature_channels`` are the prior's E_high width
        whatever ``cross_attention`` says (a model YAML written for another prior design still fits)."""
        channels = prior.encoder.high_feature_channels
        if cross_attention.feature_channels != channels:
            cross_attention = dataclasses.replace(cross_attention, feature_channels=channels)
        editor = cls(EditorConfig(prior=copy.deepcopy(prior.cfg), cross_attention=cross_attention,
                                  prompt_encoder=prompt_encoder, residual=residual))
        editor.encoder.load_state_dict(prior.encoder.state_dict())
        editor.renderer.load_state_dict(prior.renderer.state_dict())
        if residual:
            editor.base_decoder.load_state_dict(prior.encoder.decoder.state_dict())
            editor._zero_edit_output()
        return editor

    def as_residual(self, prior: PriorModel) -> "EditorCore":
        """This (non-residual) editor turned into a residual one (:attr:`EditorConfig.residual`): its weights,
        ``prior``'s E_t as the frozen ``base_decoder``, and E_t's output layer set to zero, so the new editor
        starts as ``prior``'s reconstruction for every prompt while keeping what its E_t and prompt path learned.

        Raises:
            ValueError: when the editor is residual already, or ``prior``'s E_t does not fit this editor's.
        """
        from pe3d.models.checkpoints import load_strict

        if self.cfg.residual:
            raise ValueError("this editor is residual already")
        editor = type(self)(dataclasses.replace(self.cfg, residual=True))
        result = editor.load_state_dict(self.state_dict(), strict=False)
        unexpected = [k for k in result.missing_keys if not k.startswith("base_decoder.")] + list(result.unexpected_keys)
        if unexpected:
            raise ValueError(f"as_residual: keys that do not carry over: {unexpected[:5]}")
        load_strict(editor.base_decoder, prior.encoder.decoder.state_dict(), "the prior's encoder.decoder", ValueError,
                    "this editor's E_t")
        editor._zero_edit_output()
        editor.prompt_vocabulary = self.prompt_vocabulary
        return editor.to(next(self.parameters()).device)

    def _zero_edit_output(self) -> None:
        """E_t's last convolution set to zero: the edit branch adds nothing until it is trained."""
        with torch.no_grad():
            self.encoder.decoder.out.weight.zero_()
            if self.encoder.decoder.out.bias is not None:
                self.encoder.decoder.out.bias.zero_()

    def take_prior_parts(self, prior: PriorModel) -> list[str]:
        """Load ``prior``'s E_low, E_high and renderer into this editor (the parts :meth:`from_prior` copies and
        distillation keeps frozen; a residual editor's ``base_decoder`` too, from the prior's E_t); returns the
        names of the tensors that changed (empty: they were the prior's).

        Raises:
            ValueError: when those parts of ``prior`` do not have this editor's keys and shapes
                (:func:`~pe3d.models.checkpoints.load_strict`'s message).
        """
        from pe3d.models.checkpoints import load_strict

        changed = []
        parts = [("encoder.low", "encoder.low"), ("encoder.high", "encoder.high"), ("renderer", "renderer")]
        if self.cfg.residual:
            parts.append(("base_decoder", "encoder.decoder"))
        for name, source in parts:
            ours, new = self.get_submodule(name), prior.get_submodule(source).state_dict()
            mine = ours.state_dict()
            changed += [f"{name}.{k}" for k, v in new.items()
                        if k not in mine or mine[k].shape != v.shape or not torch.equal(mine[k], v.to(mine[k].dtype))]
            load_strict(ours, new, f"the prior's {source}", ValueError, f"this editor's {name}")
        return changed

    def encode_prompts(self, prompts: Prompts) -> tuple[Tensor, Tensor]:
        """Prompt tokens ``[B, L, D]`` and validity mask ``[B, L]`` (text tokens, then image tokens)."""
        batch = prompts.batch_size()
        tokens, masks = [], []
        if prompts.texts is not None:
            if self.text_encoder is None:
                raise ValueError("this editor has no text prompt encoder (prompt_encoder.text is null)")
            present = [i for i, text in enumerate(prompts.texts) if text is not None]
            if present:
                out = self._encode_texts([self.read_prompt(prompts.texts[i]) for i in present])
                text_tokens = out.tokens.new_zeros(batch, *out.tokens.shape[1:])
                text_mask = out.mask.new_zeros(batch, out.mask.shape[1])
                text_tokens[present] = out.tokens
                text_mask[present] = out.mask
                tokens.append(text_tokens)
                masks.append(text_mask)
        if prompts.images is not None:
            if self.image_encoder is None:
                raise ValueError("this editor has no image prompt encoder (prompt_encoder.image is null)")
            has = prompts.has_image if prompts.has_image is not None else torch.ones(batch, dtype=torch.bool)
            if bool(has.any()):
                out = self.image_encoder.encode(prompts.images)
                tokens.append(out.tokens)
                masks.append(out.mask & has.to(out.mask.device)[:, None])
        if not tokens:
            raise ValueError("no prompt given: pass at least one text or reference image")
        mask = torch.cat(masks, dim=1)
        if not bool(mask.any(dim=1).all()):
            missing = (~mask.any(dim=1)).nonzero().flatten().tolist()
            raise ValueError(f"batch items {missing} have neither a text nor an image prompt")
        return torch.cat(tokens, dim=1), mask

    def read_prompt(self, text: str) -> str:
        """``text`` as this editor reads it: with :attr:`prompt_vocabulary` set and in eval mode, through it
        (:meth:`~pe3d.prompt_vocabulary.PromptVocabulary.read`: compounds split, a prompt that names no style
        read through WordNet); otherwise ``text`` itself (training reads the prompts as the pairs hold them)."""
        if self.training or self.prompt_vocabulary is None:
            return text
        return self.prompt_vocabulary.read(text)

    def _encode_texts(self, texts: list[str]) -> PromptTokens:
        """``E_p`` on ``texts``. At inference (eval mode, no gradient) the result is remembered per list
        of strings and state of the text encoder's weights (an adapter loaded in place changes it), so a
        prompt held fixed over a stream of images is encoded once."""
        encoder = self.text_encoder
        if encoder.training or torch.is_grad_enabled():
            return encoder.encode(texts)
        key = (tuple(texts), tuple((t.data_ptr(), t._version, t.dtype) for t in (*encoder.parameters(), *encoder.buffers())))
        if key not in self._text_cache:
            if len(self._text_cache) >= TEXT_CACHE_SIZE:
                self._text_cache.pop(next(iter(self._text_cache)))  # the oldest entry
            self._text_cache[key] = encoder.encode(texts)
        return self._text_cache[key]

    def forward(self, image: Tensor, prompts: Prompts) -> Tensor:
        """Edited triplane ``T_p [B,3,C,R,R]`` of ``image [B,3,H,W]`` (in [0,1]) under ``prompts``."""
        return self.edit_features(*self.image_features(image), image, prompts)

    def image_features(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """The prompt-free part of :meth:`forward`: ``(F_g, F_h)`` = ``(E_low(image), E_high(image))``."""
        return self.encoder.encode_low(image), self.encoder.encode_high(image)

    def edit_features(self, f_g: Tensor, f_h: Tensor, image: Tensor, prompts: Prompts,
                      base: Tensor | None = None) -> Tensor:
        """The rest of :meth:`forward` from :meth:`image_features`: ``E_t(CrossAttn(F_h, E_p(prompts)), F_g)``
        (training caches ``F_g`` / ``F_h`` per pair while ``E_low`` / ``E_high`` are frozen); a residual editor
        adds :meth:`base_planes` (``base``: those planes when already computed, e.g. cached in training)."""
        tokens, mask = self.encode_prompts(prompts)
        planes = self.encoder.decode(self.cross_attention(f_h, tokens, mask), f_g, image)
        if self.base_decoder is None:
            return planes
        return planes + (self.base_planes(f_g, f_h, image) if base is None else base)

    def base_planes(self, f_g: Tensor, f_h: Tensor, image: Tensor) -> Tensor:
        """A residual editor's base: the frozen prior E_t's triplane ``E_t^prior(F_h, F_g)`` (the prior's
        reconstruction, to which the edit is added).

        Raises:
            ValueError: for an editor that is not residual (:attr:`EditorConfig.residual`).
        """
        if self.base_decoder is None:
            raise ValueError("this editor is not residual: it has no base decoder")
        x = self.encoder.prepare_input(image) if self.encoder.config.t_input_skip else None
        return self.base_decoder(f_h, f_g, x)

    def reconstruct(self, image: Tensor) -> Tensor:
        """The prior's triplane (no prompt): ``E_t(E_high(I), E_low(I))`` (a residual editor's frozen base)."""
        if self.base_decoder is not None:
            return self.base_planes(*self.image_features(image), image)
        return self.encoder(image)

    def render(self, planes: Tensor, labels: Tensor, resolution: int | None = None, **kwargs) -> RenderOutput:
        """``R(T, c)`` for ``planes [B,3,C,R,R]`` and ``labels [B,25]``."""
        return self.renderer(planes, labels, resolution=resolution, **kwargs)

    def adaptation_parameters(self):
        """What norm-only adaptation trains: ``E_p``'s token mapper and ``E_t``'s norms.

        Only the mapper of ``E_p`` adapts (even when distillation trained its whole backbone),
        so an adapter stays a few hundred kB instead of carrying a copy of the token embedding.
        An ``E_p`` without a mapper (``mapper: none``, as in the imported 3DPE release, whose MAE
        feeds the cross-attention directly) adapts its backbone's LayerNorm gains and biases
        instead (38 k values for the MAE ViT-B/16), so ``E_p`` still takes part, as in the paper.
        A residual editor (:attr:`EditorConfig.residual`) adapts E_t's output layer as well (20.8 k values at
        the mini size): its edit can only move the triplane along what that layer learned in distillation, so
        with norms alone an edit no distilled style made (a recoloured background) cannot be learned.
        """
        for encoder in self.prompt_encoders():
            mapper = list(encoder.mapper.parameters())
            yield from mapper if mapper else _backbone_norm_parameters(encoder)
        yield from self.encoder.norm_parameters()
        if self.base_decoder is not None:
            yield from self.encoder.decoder.out.parameters()

    def decoder_adaptation_parameters(self):
        """The renderer's decoder MLP: what ``pe3d fit adapt decoder_lr_scale=S`` (S > 0) adapts besides
        :meth:`adaptation_parameters` (an adapter then carries it too; :func:`pe3d.adapters.check_adapter`
        accepts either form)."""
        yield from self.renderer.decoder.parameters()

    def prompt_encoders(self) -> list[nn.Module]:
        """The prompt encoders present (text first)."""
        return [enc for enc in (self.text_encoder, self.image_encoder) if enc is not None]


def _backbone_norm_parameters(encoder: nn.Module):
    """The affine parameters of every LayerNorm / GroupNorm in a prompt encoder's backbone that its
    tokens depend on (parameters kept only for checkpoint compatibility are skipped)."""
    unused = set(encoder._unused_backbone_parameters())
    for prefix, module in encoder.backbone.named_modules():
        if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            for name, param in module.named_parameters(recurse=False):
                if f"{prefix}.{name}" not in unused:
                    yield param


def input_framing(cfg: EditorConfig) -> str:
    """How a photo must be cropped for a model (:func:`pe3d.faces.prepare_portrait`): ``"eg3d"`` (EG3D's
    FFHQ crop) for one rendered by EG3D's renderer (the imported 3DPE / Live3D models), else ``"world"``."""
    return "eg3d" if getattr(cfg.prior, "eg3d_renderer", None) is not None else "world"


EDITOR_KIND = "pe3d-editor"


def save_editor(editor: EditorCore, path, extra_metadata: dict | None = None, dtype: str = "float32"):
    """Write a base editor (all weights + :class:`EditorConfig`) as safetensors."""
    from pe3d.models.checkpoints import save_model

    return save_model(editor, editor.cfg, EDITOR_KIND, path, extra_metadata, dtype)


def load_editor(path, map_location: str | torch.device = "cpu") -> EditorCore:
    """Rebuild an :class:`EditorCore` saved by :func:`save_editor` (strict keys), its convolutions stored
    channels-last on a CPU (:func:`~pe3d.devices.inference_memory_layout`: faster, same values)."""
    from pe3d.devices import inference_memory_layout
    from pe3d.models.checkpoints import load_model

    editor, _ = load_model(path, EDITOR_KIND, EditorConfig, EditorCore)
    editor.prompt_vocabulary = recorded_prompt_vocabulary(path, editor)
    return inference_memory_layout(editor.to(map_location))


def recorded_prompt_vocabulary(path, editor: EditorCore) -> Optional[PromptVocabulary]:
    """The :class:`~pe3d.prompt_vocabulary.PromptVocabulary` of the styles an editor file records (``styles``,
    written by ``pe3d fit distill``), for an editor whose text encoder has no pretrained language; ``None`` when
    it has a pretrained (or no) text encoder, records no styles, or one of them cannot be found."""
    from pe3d.prompt_vocabulary import training_vocabulary

    encoder = editor.text_encoder
    if encoder is None or encoder.cfg.pretrained:
        return None
    styles = recorded_styles(path)
    return training_vocabulary(styles) if styles else None


def recorded_styles(path) -> list[str]:
    """The ``styles`` an editor file records (``pe3d fit distill`` writes them); empty when it records none."""
    from pe3d.io import read_metadata

    return [name for name in read_metadata(path).get("styles", "").split(",") if name]


MODEL_YAML_SECTIONS = ("encoder", "renderer", "eg3d_renderer", "cross_attention", "prompt_encoder", "residual")
"""Top-level sections of ``configs/model/*.yaml`` (``eg3d_renderer`` selects EG3D's renderer, see
:class:`~pe3d.models.prior.PriorModelConfig`; ``residual`` is :attr:`EditorConfig.residual`, a flag)."""
PRIOR_YAML_SECTIONS = ("encoder", "renderer", "eg3d_renderer")
"""The sections that belong to the prior (:class:`~pe3d.models.prior.PriorModelConfig`)."""


def editor_config_from_yaml(path, overrides: list[str] | tuple[str, ...] = ()) -> EditorConfig:
    """An :class:`EditorConfig` from a model YAML (sections ``encoder``, ``renderer``, ``eg3d_renderer``,
    ``cross_attention``, ``prompt_encoder``); ``overrides`` use the same key paths, e.g.
    ``prompt_encoder.text.train=mapper``."""
    from omegaconf import OmegaConf

    from pe3d.config import load_structured

    from pe3d.config import ConfigError

    data = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(data) - set(MODEL_YAML_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; expected {list(MODEL_YAML_SECTIONS)}")
    shaped = {
        "prior": {key: data[key] for key in PRIOR_YAML_SECTIONS if key in data},
        **{key: data[key] for key in ("cross_attention", "prompt_encoder", "residual") if key in data},
    }
    return load_structured(EditorConfig, [shaped], _editor_override_paths(overrides))


def _editor_override_paths(overrides) -> list[str]:
    """Model-YAML override paths (``encoder.x=...``) as :class:`EditorConfig` paths (``prior.encoder.x=...``)."""
    return [f"prior.{o}" if o.split("=", 1)[0].split(".")[0] in PRIOR_YAML_SECTIONS else o for o in overrides]


def with_editor_overrides(editor: EditorCore, overrides: list[str] | tuple[str, ...]) -> EditorCore:
    """``editor`` with ``key=value`` changes to its config in model-YAML paths (e.g. ``encoder.plane_border=10``)
    and the same weights; a change that adds, drops or reshapes a weight is refused (:class:`~pe3d.config.ConfigError`)."""
    from dataclasses import asdict

    from pe3d.config import load_structured
    from pe3d.models.checkpoints import with_config_overrides

    changed = with_config_overrides(
        editor, list(overrides),
        lambda o: EditorCore(load_structured(EditorConfig, [asdict(editor.cfg)], _editor_override_paths(o))))
    if changed is not editor:
        changed.prompt_vocabulary = editor.prompt_vocabulary
    return changed
