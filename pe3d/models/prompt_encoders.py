"""Prompt encoders ``E_p`` (paper Sec. 3.2): prompt -> tokens for the cross-attention after ``E_high``.

``F_a = crossatt(E_high(I), E_p(P))``: ``E_p`` is CLIP's text transformer for text prompts and an
MAE ViT-B/16 for image prompts. Both return :class:`PromptTokens` ``(tokens [B, L, out_dim],
mask [B, L])``; ``train='mapper'`` freezes the pretrained backbone and trains only a small token mapper.

Example::

    enc = build_prompt_encoder(PromptEncoderConfig(kind="text", arch="ViT-L-14", pretrained="openai"))
    out = enc.encode(["bronze statue", "pixar style"])   # out.tokens [2, 77, 768], out.mask [2, 77]

This module is the public entry point; the pieces live in :mod:`.prompt_base`, :mod:`.prompt_text`
and :mod:`.prompt_image`.
"""

from __future__ import annotations

from typing import Any, Mapping, Union

from .prompt_base import (
    DEFAULT_ARCH,
    MAPPER_KINDS,
    PROMPT_KINDS,
    TRAIN_MODES,
    PromptEncoder,
    PromptEncoderConfig,
    PromptTokens,
    StateDictMismatchError,
    TokenMapper,
    load_state_dict_strict,
    read_state_dict,
)
from .prompt_image import TimmImagePromptEncoder
from .prompt_text import ClipTextPromptEncoder, extract_text_tower_state_dict

__all__ = [
    "DEFAULT_ARCH",
    "MAPPER_KINDS",
    "PROMPT_KINDS",
    "TRAIN_MODES",
    "ClipTextPromptEncoder",
    "PromptEncoder",
    "PromptEncoderConfig",
    "PromptTokens",
    "StateDictMismatchError",
    "TimmImagePromptEncoder",
    "TokenMapper",
    "build_prompt_encoder",
    "extract_text_tower_state_dict",
    "load_state_dict_strict",
    "read_state_dict",
]

PROMPT_ENCODERS = {"text": ClipTextPromptEncoder, "image": TimmImagePromptEncoder}
"""Encoder class per :attr:`PromptEncoderConfig.kind`."""


def build_prompt_encoder(cfg: Union[PromptEncoderConfig, Mapping[str, Any]]) -> PromptEncoder:
    """Build ``E_p`` from its config (a :class:`PromptEncoderConfig`, dict or OmegaConf ``DictConfig``).

    Returns:
        :class:`ClipTextPromptEncoder` for ``kind='text'``, :class:`TimmImagePromptEncoder` for
        ``kind='image'``, with backbone weights loaded when ``cfg.pretrained`` is set.

    Raises:
        ValueError: unknown keys or values in the config.
        FileNotFoundError: ``cfg.pretrained`` given but not found locally (the message names every
            place looked).
        StateDictMismatchError: the weights file does not match the backbone (lists keys/shapes).
    """
    if not isinstance(cfg, PromptEncoderConfig):
        cfg = PromptEncoderConfig.from_mapping(cfg)
    return PROMPT_ENCODERS[cfg.kind](cfg)
