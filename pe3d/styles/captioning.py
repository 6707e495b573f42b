"""BLIP image captioning (paper Sec. 4.1): a reference image in the target style -> a caption.

The paper captions each image prompt with BLIP [Li et al. 2022] and uses the caption as the
InstructPix2Pix instruction that makes the pseudo label. :class:`Captioner` wraps
``transformers``' ``BlipForConditionalGeneration`` and ``BlipProcessor``, loaded only from a
local ``save_pretrained`` folder or a hub id already in the local Hugging Face cache
(:func:`pe3d.styles.pretrained.resolve_model_dir`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pe3d.images import quantize_uint8
from pe3d.devices import resolve_device, resolve_dtype
from pe3d.styles.pretrained import resolve_model_dir

BLIP_MARKER = "config.json"
"""File at the top of every saved BLIP model folder."""


@dataclass
class CaptionerConfig:
    """``model``: a BLIP captioning folder or cached hub id (``Salesforce/blip-image-captioning-large``);
    ``max_new_tokens`` / ``min_new_tokens`` / ``num_beams``: generation settings (greedy when
    ``num_beams`` is 1); ``cache_dir``: Hugging Face cache to search (``""``: the default)."""

    model: str = "Salesforce/blip-image-captioning-large"
    max_new_tokens: int = 30
    min_new_tokens: int = 0
    num_beams: int = 3
    device: str = "auto"
    dtype: str = "float32"
    cache_dir: str = ""


class Captioner:
    """``captioner(images) -> captions`` with a BLIP captioning model from disk."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.cfg = cfg
        self.folder = resolve_model_dir(cfg.model, BLIP_MARKER, "BLIP captioner", cfg.cache_dir)
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.processor = BlipProcessor.from_pretrained(self.folder, local_files_only=True)
        self.model = BlipForConditionalGeneration.from_pretrained(self.folder, local_files_only=True)
        self.model.to(device=self.device, dtype=self.dtype).eval()

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> list[str]:
        """Captions of ``images [B, 3, H, W]`` in ``[0, 1]`` (quantised to 8 bits first, as on disk).

        Raises:
            ValueError: BLIP produced an empty caption for an image (its batch index named).
        """
        from PIL import Image

        pixels = quantize_uint8(images).permute(0, 2, 3, 1).cpu().numpy()
        inputs = self.processor(images=[Image.fromarray(p) for p in pixels], return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
        tokens = self.model.generate(
            pixel_values=pixel_values,
            max_new_tokens=self.cfg.max_new_tokens,
            min_new_tokens=self.cfg.min_new_tokens,
            num_beams=self.cfg.num_beams,
            do_sample=False,
        )
        captions = [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]
        empty = [i for i, text in enumerate(captions) if not text]
        if empty:
            raise ValueError(f"BLIP captioner {self.cfg.model!r} returned an empty caption for image(s) {empty}")
        return captions
