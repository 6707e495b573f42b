"""Tiny real Hugging Face components for the InstructPix2Pix / BLIP tests, built from configs.

``save_tiny_ip2p(folder)`` writes a ``StableDiffusionInstructPix2PixPipeline`` (UNet with 8 input
channels, 2-level VAE, 2-layer CLIP text model, a small byte-level CLIP tokenizer) with
``save_pretrained``; ``save_tiny_blip(folder)`` writes a ``BlipForConditionalGeneration`` with its
``BlipProcessor`` (32 px images, a 30-word ``BertTokenizer``). Both load back with
``from_pretrained(folder)`` exactly as the real checkpoints do, and run in well under a second.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

CAPTION_WORDS = (
    "a statue of man woman golden bronze zombie portrait painting the person face with hair smiling "
    "cartoon sketch photo old young marble clown elf vampire anime pop art oil"
).split()


def save_tiny_ip2p(folder: Path) -> Path:
    """Write a tiny InstructPix2Pix pipeline to ``folder`` (returned)."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4, sample_size=32,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + string.digits + "'":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    tokenizer_dir = folder.parent / f"{folder.name}-tokenizer-src"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "vocab.json").write_text(json.dumps(vocab))
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n")
    # transformers 5: CLIPTokenizer(vocab_file=...) ignores the files; from_pretrained(dir) reads them
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=64)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def save_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """Write a tiny BLIP captioner (model + processor) to ``folder`` (returned)."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [*specials, *CAPTION_WORDS, "[DEC]"]
    # transformers 5: BertTokenizer(vocab_file=...) ignores the file; pass the vocabulary itself
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    config = BlipConfig(
        text_config=dict(
            vocab_size=len(words), hidden_size=32, encoder_hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=64, bos_token_id=len(words) - 1,
            sep_token_id=words.index("[SEP]"), pad_token_id=0, eos_token_id=words.index("[SEP]"),
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
            projection_dim=32,
        ),
        projection_dim=32, image_text_hidden_size=32,
    )
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def fake_hf_cache(cache: Path, repo_id: str, source: Path, revision: str = "0123456789abcdef") -> Path:
    """Lay ``source`` out as ``repo_id`` in a Hugging Face cache at ``cache`` (hub layout:
    ``models--org--name/refs/main`` + ``snapshots/<revision>/``); returns the snapshot folder."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
