"""Plain ``nn.Module``s of pe3d: the prior encoder (E_low, E_high, E_t) and the prompt cross-attention."""

from pe3d.models.cross_attention import PromptCrossAttention, PromptCrossAttentionConfig
from pe3d.models.prior_encoder import (
    HighResEncoder,
    LowResEncoder,
    PriorEncoder,
    PriorEncoderConfig,
    TriplaneViTDecoder,
)

__all__ = [
    "HighResEncoder",
    "LowResEncoder",
    "PriorEncoder",
    "PriorEncoderConfig",
    "PromptCrossAttention",
    "PromptCrossAttentionConfig",
    "TriplaneViTDecoder",
]
