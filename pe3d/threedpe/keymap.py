"""Key map between the 3DPE / Live3D state dicts and pe3d's editor / prior.

Their checkpoints (``3dpe.pt``, Live3D's ``encoder_render.pt``) hold two plain state dicts:

* ``encoder_state_dict``: ``Live3DEditingEncoder`` (3DPE, ``models/model_ref.py``) or
  ``EG3DInvEncoder`` (Live3D, ``models/model.py``), both in mode ``"LT"``: ``encoder.*`` /
  ``decoder.*`` (segmentation_models_pytorch's ResNet-34 and DeepLabV3 head, batch norms
  removed), ``F_encoder.*`` (E_low's ViT + convs), ``EHigh_encoder.*``, ``Final_encoder.*`` (E_t)
  and, for 3DPE, ``Ref_encoder.*`` (the MAE ViT-B/16 and the cross-attention);
* ``renderer_state_dict``: their ``TriplaneRenderer`` (``const``, ``decoder.*``, ``superresolution.*``).

:func:`map_key` renames one of their keys to ours, driven by the model config (stage depths,
head widths), so the same map serves the full-size release and reduced-width test variants.
:func:`their_key` is its inverse (used to write files in their layout for tests).
"""

from __future__ import annotations

import re
from typing import Optional

from pe3d.models.prior_encoder import PriorEncoderConfig

ENCODER_PART = "encoder_state_dict"
RENDERER_PART = "renderer_state_dict"
PARTS = (ENCODER_PART, RENDERER_PART)
"""The two entries of their checkpoint."""

IGNORED = "<ignored>"
"""What :func:`map_key` returns for tensors their forward pass never uses."""

_BLOCK_RENAMES = (("attn.norm.", "attn.sr_norm."), ("mlp.dwconv.dwconv.", "mlp.dwconv."))
"""SegFormer ``Block`` (segmentation_models_pytorch) -> :class:`~pe3d.models.layers.TransformerBlock`."""


def _block(rest: str) -> str:
    for theirs, ours in _BLOCK_RENAMES:
        if rest.startswith(theirs):
            return ours + rest[len(theirs):]
    return rest


def _unblock(rest: str) -> str:
    for theirs, ours in _BLOCK_RENAMES:
        if rest.startswith(ours):
            return theirs + rest[len(ours):]
    return rest


def _stage_offset(cfg: PriorEncoderConfig, stage: int) -> int:
    return sum(cfg.low_stage_depths[: stage - 1])


def _head_index(cfg: PriorEncoderConfig, index: int) -> Optional[str]:
    """Their ``Final_encoder.output_net.{index}`` (conv, act, upsample, conv, act, ...) -> our E_t head."""
    n = len(cfg.t_head_widths)
    if index == 0:
        return "encoder.decoder.head_first.conv"
    k = (index - 3) // 2
    if index >= 3 and (index - 3) % 2 == 0 and k <= n - 1:
        return "encoder.decoder.out" if k == n - 1 else f"encoder.decoder.head_rest.{k}.conv"
    return None


def map_key(part: str, key: str, cfg: PriorEncoderConfig) -> Optional[str]:
    """Our state-dict key for their ``key`` in ``part`` (:data:`PARTS`), :data:`IGNORED`, or ``None`` (unknown)."""
    if part == RENDERER_PART:
        if key == "const" or key.startswith(("decoder.", "superresolution.")):
            return f"renderer.{key}"
        return None
    if part != ENCODER_PART:
        return None
    m = re.fullmatch(r"encoder\.conv1\.(weight|bias)", key)
    if m:
        return f"encoder.low.stem.0.conv.{m[1]}"
    m = re.fullmatch(r"encoder\.layer(\d+)\.(\d+)\.(conv1|conv2|downsample\.0)\.(weight|bias)", key)
    if m:
        stage, block, conv, kind = int(m[1]), int(m[2]), m[3], m[4]
        if stage > len(cfg.low_stage_depths):
            return IGNORED  # smp keeps ResNet's later stages; encoder_depth=3 never runs them
        if block >= cfg.low_stage_depths[stage - 1]:
            return None
        name = {"conv1": "conv1.conv", "conv2": "conv2", "downsample.0": "shortcut"}[conv]
        return f"encoder.low.stages.{_stage_offset(cfg, stage) + block}.{name}.{kind}"
    m = re.fullmatch(r"decoder\.0\.convs\.(\d+)\.(\d)\.(weight|bias)", key)
    if m:
        branch, inner, kind = int(m[1]), int(m[2]), m[3]
        rates = len(cfg.low_aspp_rates)
        if branch <= rates and inner == 0:
            return f"encoder.low.aspp.branches.{branch}.conv.{kind}"
        if branch == rates + 1 and inner == 1 and cfg.low_aspp_pooling:
            return f"encoder.low.aspp.pool.conv.{kind}"
        return None
    m = re.fullmatch(r"decoder\.(0\.project\.0|1)\.(weight|bias)", key)
    if m:
        return f"encoder.low.aspp.{'project' if m[1] != '1' else 'refine'}.conv.{m[2]}"
    m = re.fullmatch(r"(F_encoder\.patchembed|Final_encoder\.pathembed)\.(.+)", key)
    if m:
        return f"encoder.{'low' if m[1].startswith('F_') else 'decoder'}.vit.embed.{m[2]}"
    m = re.fullmatch(r"F_encoder\.blocks\.(\d+)\.(.+)", key)
    if m:
        return f"encoder.low.vit.blocks.{m[1]}.{_block(m[2])}"
    m = re.fullmatch(r"Final_encoder\.block\.(.+)", key)
    if m:
        return f"encoder.decoder.vit.blocks.0.{_block(m[1])}"
    m = re.fullmatch(r"(F_encoder|EHigh_encoder|Final_encoder)\.net\.(\d+)\.(weight|bias)", key)
    if m and int(m[2]) % 2 == 0:
        target = {"F_encoder": "encoder.low.head", "EHigh_encoder": "encoder.high.net",
                  "Final_encoder": "encoder.decoder.fuse"}[m[1]]
        return f"{target}.{int(m[2]) // 2}.conv.{m[3]}"
    m = re.fullmatch(r"Final_encoder\.output_net\.(\d+)\.(weight|bias)", key)
    if m:
        target = _head_index(cfg, int(m[1]))
        return f"{target}.{m[2]}" if target else None
    m = re.fullmatch(r"Ref_encoder\.mae_encoder\.(.+)", key)
    if m:
        return f"image_encoder.backbone.{m[1]}"
    m = re.fullmatch(r"Ref_encoder\.(pre_conv|patch_emb)\.(.+)", key)
    if m:
        return f"cross_attention.{'pre_conv' if m[1] == 'pre_conv' else 'embed'}.{m[2]}"
    if key == "Ref_encoder.proj_tail.weight":
        return "cross_attention.out_conv.weight"
    return None


def their_key(key: str, cfg: PriorEncoderConfig) -> tuple[str, str]:
    """``(part, their key)`` for one of our keys; the inverse of :func:`map_key`.

    Raises:
        KeyError: our key has no counterpart in their layout.
    """
    if key.startswith("renderer."):
        return RENDERER_PART, key[len("renderer."):]
    rules: list[tuple[str, object]] = [
        (r"encoder\.low\.stem\.0\.conv\.(.+)", lambda m: f"encoder.conv1.{m[1]}"),
        (r"encoder\.low\.aspp\.branches\.(\d+)\.conv\.(.+)", lambda m: f"decoder.0.convs.{m[1]}.0.{m[2]}"),
        (r"encoder\.low\.aspp\.pool\.conv\.(.+)", lambda m: f"decoder.0.convs.{len(cfg.low_aspp_rates) + 1}.1.{m[1]}"),
        (r"encoder\.low\.aspp\.project\.conv\.(.+)", lambda m: f"decoder.0.project.0.{m[1]}"),
        (r"encoder\.low\.aspp\.refine\.conv\.(.+)", lambda m: f"decoder.1.{m[1]}"),
        (r"encoder\.low\.vit\.embed\.(.+)", lambda m: f"F_encoder.patchembed.{m[1]}"),
        (r"encoder\.decoder\.vit\.embed\.(.+)", lambda m: f"Final_encoder.pathembed.{m[1]}"),
        (r"encoder\.low\.vit\.blocks\.(\d+)\.(.+)", lambda m: f"F_encoder.blocks.{m[1]}.{_unblock(m[2])}"),
        (r"encoder\.decoder\.vit\.blocks\.0\.(.+)", lambda m: f"Final_encoder.block.{_unblock(m[1])}"),
        (r"encoder\.low\.head\.(\d+)\.conv\.(.+)", lambda m: f"F_encoder.net.{2 * int(m[1])}.{m[2]}"),
        (r"encoder\.high\.net\.(\d+)\.conv\.(.+)", lambda m: f"EHigh_encoder.net.{2 * int(m[1])}.{m[2]}"),
        (r"encoder\.decoder\.fuse\.(\d+)\.conv\.(.+)", lambda m: f"Final_encoder.net.{2 * int(m[1])}.{m[2]}"),
        (r"encoder\.decoder\.head_first\.conv\.(.+)", lambda m: f"Final_encoder.output_net.0.{m[1]}"),
        (r"encoder\.decoder\.head_rest\.(\d+)\.conv\.(.+)", lambda m: f"Final_encoder.output_net.{3 + 2 * int(m[1])}.{m[2]}"),
        (r"encoder\.decoder\.out\.(.+)", lambda m: f"Final_encoder.output_net.{3 + 2 * (len(cfg.t_head_widths) - 1)}.{m[1]}"),
        (r"image_encoder\.backbone\.(.+)", lambda m: f"Ref_encoder.mae_encoder.{m[1]}"),
        (r"cross_attention\.pre_conv\.(.+)", lambda m: f"Ref_encoder.pre_conv.{m[1]}"),
        (r"cross_attention\.embed\.(.+)", lambda m: f"Ref_encoder.patch_emb.{m[1]}"),
        (r"cross_attention\.out_conv\.weight", lambda m: "Ref_encoder.proj_tail.weight"),
    ]
    m = re.fullmatch(r"encoder\.low\.stages\.(\d+)\.(conv1\.conv|conv2|shortcut)\.(.+)", key)
    if m:
        index, stage = int(m[1]), 1
        while index >= cfg.low_stage_depths[stage - 1]:
            index -= cfg.low_stage_depths[stage - 1]
            stage += 1
        name = {"conv1.conv": "conv1", "conv2": "conv2", "shortcut": "downsample.0"}[m[2]]
        return ENCODER_PART, f"encoder.layer{stage}.{index}.{name}.{m[3]}"
    for pattern, build in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return ENCODER_PART, build(m)  # type: ignore[operator]
    raise KeyError(f"{key} has no counterpart in the 3DPE/Live3D layout")
