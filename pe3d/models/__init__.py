"""Plain ``nn.Module``s of pe3d (no Lightning): the prior encoder (E_low, E_high, E_t), the prompt
cross-attention, the editor core and the prior model, with their save/load functions."""

from pe3d.models.checkpoints import model_hash
from pe3d.models.cross_attention import PromptCrossAttention, PromptCrossAttentionConfig
from pe3d.models.editor import EditorConfig, EditorCore, Prompts, editor_config_from_yaml, load_editor, save_editor
from pe3d.models.prior import PriorModel, PriorModelConfig, load_prior, model_config_from_yaml, save_prior
from pe3d.models.prior_encoder import (
    HighResEncoder,
    LowResEncoder,
    PriorEncoder,
    PriorEncoderConfig,
    TriplaneViTDecoder,
)

__all__ = [
    "EditorConfig",
    "EditorCore",
    "HighResEncoder",
    "LowResEncoder",
    "PriorEncoder",
    "PriorEncoderConfig",
    "PriorModel",
    "PriorModelConfig",
    "PromptCrossAttention",
    "PromptCrossAttentionConfig",
    "Prompts",
    "TriplaneViTDecoder",
    "editor_config_from_yaml",
    "load_editor",
    "load_prior",
    "model_config_from_yaml",
    "model_hash",
    "save_editor",
    "save_prior",
]
