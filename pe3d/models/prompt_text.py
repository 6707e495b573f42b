"""Text prompt encoder: the text transformer of an open_clip CLIP model (paper: CLIP for text prompts).

The encoder returns *every* token of the last layer (after CLIP's final LayerNorm), like the text
conditioning of Stable Diffusion, not only the pooled end-of-text embedding. Tokenization uses
open_clip's shipped BPE tokenizer, which works offline.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .prompt_base import (
    PromptEncoder,
    PromptEncoderConfig,
    StateDictMismatchError,
    find_flat_file,
    find_in_hf_cache,
    load_state_dict_strict,
    not_found_error,
)

TEXT_TOWER_PREFIXES: Tuple[str, ...] = (
    "token_embedding.",
    "positional_embedding",
    "transformer.",
    "ln_final.",
    "text_projection",
)
"""Top-level key prefixes of the text tower inside an open_clip ``CLIP`` state dict."""
IGNORED_CLIP_KEYS: Tuple[str, ...] = ("attn_mask",)
"""Keys of old open_clip checkpoints that hold derived buffers, not weights."""
OPEN_CLIP_HF_FILENAMES: Tuple[str, ...] = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
"""File names open_clip uses on the Hugging Face hub (safetensors first)."""


@functools.lru_cache(maxsize=8)
def _tokenizer(arch: str) -> Any:
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    tok = open_clip.get_tokenizer(arch)
    if not isinstance(tok, SimpleTokenizer):
        raise NotImplementedError(
            f"text prompt encoder supports open_clip models with the CLIP BPE tokenizer; "
            f"{arch!r} uses {type(tok).__name__}"
        )
    return tok


def _text_cfg_fields() -> set:
    from open_clip.model import CLIPTextCfg

    return {f.name for f in dataclasses.fields(CLIPTextCfg)}


class ClipTextPromptEncoder(PromptEncoder):
    """``E_p`` for text: open_clip text transformer + token mapper.

    ``encode(list[str]) -> PromptTokens(tokens [B, L, out_dim], mask [B, L])`` with ``L = max_length``;
    ``mask`` is ``True`` from the start token through the end token of each prompt.

    Attributes:
        backbone: ``open_clip.transformer.TextTransformer``; its state dict has the key layout of the
            text part of an open_clip ``CLIP`` state dict (``token_embedding.weight``, ``transformer.*``,
            ``ln_final.*``, ``positional_embedding``, ``text_projection``).
        tokenizer: open_clip ``SimpleTokenizer`` of ``arch``.
        max_length: ``L``.
    """

    def __init__(self, cfg: PromptEncoderConfig) -> None:
        if cfg.kind != "text":
            raise ValueError(f"ClipTextPromptEncoder needs kind='text', got {cfg.kind!r}")
        super().__init__(cfg)
        import open_clip
        from open_clip.model import _build_text_tower

        arch = str(cfg.arch)
        if ":" in arch:
            raise ValueError(
                f"text prompt encoder arch must be a built-in open_clip model name, got {arch!r} "
                "(hf-hub:/local-dir: model configs are not supported)"
            )
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            raise ValueError(f"unknown open_clip model {arch!r}; known: {', '.join(open_clip.list_models())}")
        text_cfg: Dict[str, Any] = dict(model_cfg["text_cfg"])
        embed_dim = int(model_cfg["embed_dim"])
        if cfg.tiny:
            tiny = dict(cfg.tiny)
            embed_dim = int(tiny.pop("embed_dim", embed_dim))
            unknown = sorted(set(tiny) - _text_cfg_fields())
            if unknown:
                raise ValueError(
                    f"unknown prompt_encoder.tiny key(s) {unknown} for a text tower; valid: "
                    f"embed_dim, {', '.join(sorted(_text_cfg_fields()))}"
                )
            text_cfg.update(tiny)
        if text_cfg.get("hf_model_name"):
            raise NotImplementedError(
                f"open_clip model {arch!r} uses a Hugging Face text tower ({text_cfg['hf_model_name']}); "
                "only open_clip's own TextTransformer is supported"
            )
        if text_cfg.get("embed_cls"):
            raise NotImplementedError(f"open_clip model {arch!r} has a CoCa-style text CLS token; not supported")
        self._custom_text = bool(model_cfg.get("custom_text", False))

        # The pretrained file is resolved before building (a bad path fails fast), and a tag's config
        # tells whether the weights need QuickGELU.
        self._tag_cfg: Dict[str, Any] = {}
        pretrained_path = self.resolve_pretrained(cfg.pretrained) if cfg.pretrained else None
        quick_gelu = cfg.quick_gelu
        if quick_gelu is None:
            quick_gelu = bool(self._tag_cfg.get("quick_gelu", model_cfg.get("quick_gelu", False)))
        self.quick_gelu = quick_gelu

        self.backbone = _build_text_tower(embed_dim, text_cfg, quick_gelu=quick_gelu)
        self.tokenizer = _tokenizer(arch)
        if self.tokenizer.vocab_size > self.backbone.vocab_size:
            raise ValueError(
                f"text tower vocab_size {self.backbone.vocab_size} is smaller than the tokenizer's "
                f"{self.tokenizer.vocab_size}"
            )
        context = int(self.backbone.context_length)
        self.max_length = int(cfg.max_length) if cfg.max_length is not None else context
        if self.max_length > context:
            raise ValueError(f"prompt_encoder.max_length={self.max_length} exceeds the text tower's context {context}")
        if cfg.token_vectors is not None:
            self._apply_token_vectors(cfg.token_vectors)
        self._finish_init()
        if pretrained_path is not None:
            self.load_backbone(str(pretrained_path))

    def _apply_token_vectors(self, value: str) -> None:
        from .lexicon import apply_token_vectors, blend_with_random, load_token_vectors, resolve_token_vectors

        path = resolve_token_vectors(value)
        token_ids, vectors = load_token_vectors(path)
        if self.cfg.token_vectors_mix != 1.0:
            vectors = blend_with_random(vectors, self.cfg.token_vectors_mix, self.cfg.token_vectors_seed)
        apply_token_vectors(self.backbone.token_embedding, token_ids, vectors, source=str(path))

    # -- PromptEncoder ------------------------------------------------------------------------
    @property
    def backbone_dim(self) -> int:
        """Text transformer width (512 for ViT-B CLIP, 768 for ViT-L/14)."""
        return int(self.backbone.width)

    def _unused_backbone_parameters(self) -> Tuple[str, ...]:
        # The pooled-embedding projection is kept so that CLIP checkpoints load strictly, but the
        # token output never uses it.
        proj = self.backbone.text_projection
        if proj is None:
            return ()
        return tuple(n for n, _ in self.backbone.named_parameters() if n.startswith("text_projection"))

    def tokenize(self, prompts: Sequence[str] | str) -> Tuple[Tensor, Tensor]:
        """Prompts -> (token ids ``[B, L]`` long, valid mask ``[B, L]`` bool), on the CPU.

        Raises ``ValueError`` for an empty batch or a prompt with no tokens; warns (``UserWarning``)
        and truncates, keeping the end token, when a prompt has more than ``max_length`` tokens.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise ValueError("text prompt encoder got an empty list of prompts")
        tok = self.tokenizer
        L = self.max_length
        ids = torch.zeros(len(prompts), L, dtype=torch.long)
        mask = torch.zeros(len(prompts), L, dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompt {i} is a {type(prompt).__name__}, expected str")
            body = tok.encode(prompt)
            if not body:
                raise ValueError(f"prompt {i} is empty (no tokens after cleaning): {prompt!r}")
            seq = [tok.sot_token_id, *body, tok.eot_token_id]
            if len(seq) > L:
                warnings.warn(
                    f"prompt {i} has {len(seq)} tokens (with start/end tokens), more than "
                    f"max_length={L}; truncated to {L}: {prompt[:80]!r}",
                    UserWarning,
                    stacklevel=_caller_stacklevel(),
                )
                seq = seq[: L - 1] + [tok.eot_token_id]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = True
        return ids, mask

    def _encode_backbone(self, prompts: Sequence[str] | str) -> Tuple[Tensor, Tensor]:
        ids, mask = self.tokenize(prompts)
        tower = self.backbone
        device = tower.token_embedding.weight.device
        ids, mask = ids.to(device), mask.to(device)
        L = ids.shape[1]
        x = tower.token_embedding(ids) + tower.positional_embedding[:L]  # [B, L, C]
        attn_mask = tower.attn_mask[:L, :L] if tower.attn_mask is not None else None  # causal
        x = tower.transformer(x, attn_mask=attn_mask)
        x = tower.ln_final(x)
        return x, mask

    def pooled_projection(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """CLIP's pooled text embedding from *backbone* tokens: end token through ``text_projection``.

        Args:
            tokens: ``[B, L, C]`` backbone tokens (before the mapper).
            mask: ``[B, L]`` valid mask; the last valid position is the end token.

        Returns:
            ``[B, embed_dim]``, equal to open_clip's ``encode_text`` for the same token ids.
        """
        last = mask.long().sum(dim=1) - 1
        pooled = tokens[torch.arange(tokens.shape[0], device=tokens.device), last]
        proj = self.backbone.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj

    def _load_backbone_state_dict(self, state_dict: Dict[str, Tensor], source: str) -> None:
        sd, others = extract_text_tower_state_dict(state_dict)
        note = ""
        if others:
            note = f"keys in the file that are not text-tower keys (ignored): {_preview(others)}"
        try:
            load_state_dict_strict(self.backbone, sd, source, f"open_clip text tower of {self.cfg.arch!r}", note)
        except StateDictMismatchError as err:
            if not sd:  # nothing text-like at all: say what the file holds
                raise StateDictMismatchError(
                    source, err.what, err.missing, sorted(others), [],
                    "the file holds no open_clip text-tower keys",
                ) from None
            raise

    def _resolve_tag(self, tag: str) -> Path:
        import open_clip

        arch = str(self.cfg.arch)
        if tag.startswith("hf-hub:"):
            return self.find_hf_hub_file(tag, OPEN_CLIP_HF_FILENAMES, "open_clip weights")
        looked: List[str] = []
        found = find_open_clip_tag_file(arch, tag, self.cfg.cache_dir or None, looked)
        self._tag_cfg = dict(open_clip.get_pretrained_cfg(arch, tag))
        if found is None:
            raise not_found_error(f"open_clip weights {arch!r} / {tag!r}", looked)
        return found


def find_open_clip_tag_file(model_name: str, tag: str, cache_dir: Optional[str], looked: list[str]) -> Optional[Path]:
    """Local file of open_clip pretrained ``tag`` of ``model_name`` (explicit file, Hugging Face cache, flat
    download cache), or ``None``; every place tried is appended to ``looked``. Never downloads."""
    import open_clip

    if tag.startswith("hf-hub:"):
        dirs: list[Optional[str]] = [cache_dir] if cache_dir else [None]
        return find_in_hf_cache(tag[len("hf-hub:"):].strip("/"), OPEN_CLIP_HF_FILENAMES, dirs, looked)
    pcfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not pcfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ValueError(f"{tag!r} is neither an existing file nor an open_clip pretrained tag of {model_name!r}; tags: {', '.join(tags) or '(none)'}")
    if pcfg.get("file"):
        looked.append(str(pcfg["file"]))
        if Path(pcfg["file"]).is_file():
            return Path(pcfg["file"])
    if pcfg.get("hf_hub"):
        repo, filename = os.path.split(pcfg["hf_hub"])  # 'org/name/' -> default names; 'org/name/f.bin' -> that file
        names = [filename] if filename else list(OPEN_CLIP_HF_FILENAMES)
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        found = find_in_hf_cache(repo, names, [cache_dir] if cache_dir else [None], looked)
        if found is not None:
            return found
    if pcfg.get("url"):
        dirs_flat = [cache_dir] if cache_dir else [os.path.expanduser("~/.cache/clip")]
        return find_flat_file(os.path.basename(pcfg["url"]), dirs_flat, looked)
    return None


def extract_text_tower_state_dict(state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """Split a checkpoint into text-tower keys (in ``TextTransformer`` layout) and all other keys.

    Accepts a bare ``TextTransformer`` state dict, a full open_clip ``CLIP`` state dict (text keys at the
    top level) or a ``CustomTextCLIP`` state dict (text keys under ``text.``).
    """
    if any(k.startswith("text.") for k in state_dict):
        text = {k[len("text."):]: v for k, v in state_dict.items() if k.startswith("text.")}
        others = [k for k in state_dict if not k.startswith("text.")]
    else:
        text = {k: v for k, v in state_dict.items() if k.startswith(TEXT_TOWER_PREFIXES)}
        others = [k for k in state_dict if not k.startswith(TEXT_TOWER_PREFIXES)]
    for k in IGNORED_CLIP_KEYS:
        text.pop(k, None)
    return text, others


def _caller_stacklevel() -> int:
    """``stacklevel`` pointing at the first frame outside pe3d's prompt encoders and ``torch.nn``."""
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        fname = os.path.abspath(frame.f_code.co_filename)
        inside = (os.path.dirname(fname) == here and os.path.basename(fname).startswith("prompt_")) or (
            f"{os.sep}torch{os.sep}nn{os.sep}" in fname
        )
        if not inside:
            return level
        level, frame = level + 1, frame.f_back
    return level


def _preview(keys: Sequence[str], limit: int = 8) -> str:
    heads = sorted({k.split(".")[0] for k in keys})
    shown = ", ".join(heads[:limit])
    return shown + (", ..." if len(heads) > limit else "") + f" ({len(keys)} keys)"
