"""``generator: instruct-pix2pix``: pseudo labels from InstructPix2Pix, as in the paper (Sec. 3.2 / 4.1).

Pair ``i`` (every random choice is drawn from :meth:`PairGenerator.rng` ``(i)`` and the
diffusion noise is seeded with :meth:`PairGenerator.pair_seed` ``(i)``, so a pair depends
only on the style and ``i``; pairs are edited one at a time so that batching cannot change
the pixels):

1. **Portrait** ``I`` and its camera, by ``params.source``:
   ``folder``: image number ``pairs.identity_offset + i`` of ``params.dir`` (searched
   recursively and sorted by relative path, e.g. EG3D's FFHQ-512 layout
   ``00000/img00000000.png``), its camera from the EG3D ``dataset.json`` in that folder
   (``params.cameras``), frontal when absent; ``world``: identity
   ``pairs.identity_offset + i`` of the embedded world rendered at a camera drawn from
   ``pairs.pose``; ``eg3d``: an EG3D sample (``params.eg3d``: a file written by
   ``pe3d import-eg3d``) whose latent is seeded with ``pairs.identity_offset + i``,
   conditioned on the frontal camera with ``params.truncation_psi`` / ``truncation_cutoff``,
   rendered at a camera drawn from ``pairs.pose`` and resized to ``pairs.resolution``.
2. **Instruction**. A text pair uses one of the style's train prompts. An image-prompt pair
   (a share ``pairs.image_fraction`` when ``image_prompts`` is on) first gets a reference
   image ``P`` in the target style: a random image of ``params.references`` when that folder
   is given, otherwise InstructPix2Pix's edit of *another* portrait with a train prompt (the
   paper makes its visual prompts with the same 2D editor). BLIP captions ``P`` and the
   instruction is ``params.instruction.format(caption=caption)``; the default template
   ``"{caption}"`` uses the caption verbatim, as the paper does ("use the obtained text as
   the instruction"). The manifest's ``prompt`` of an image pair is that instruction.
3. **Pseudo label** ``I_gt = IP2P(I, instruction)`` with ``params.steps`` denoising steps,
   text guidance ``params.guidance_scale`` and image guidance ``params.image_guidance_scale``.

Images are quantised to 8 bits before they are captioned or edited, so the files on disk
are exactly what BLIP and InstructPix2Pix saw. ``pairs.resolution`` must be a multiple of 8
(InstructPix2Pix works at 512, the paper's FFHQ resolution).

Models load from disk only: ``params.model`` is a diffusers ``save_pretrained`` folder or a
hub id (``timbrooks/instruct-pix2pix``) already in the Hugging Face cache; likewise
``params.captioner.model`` for BLIP (see :mod:`pe3d.styles.pretrained`). A missing model
is an error naming the id and every place searched, raised when the generator is built
(loading a ``style.yaml`` checks only the values). The pipeline itself loads at the first
pair, so resuming a finished pair set costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pe3d.config import ConfigError
from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import load_square_image, quantize_uint8
from pe3d.styles.captioning import BLIP_MARKER, Captioner, CaptionerConfig
from pe3d.styles.generators import (
    IMAGE_SUFFIXES,
    Pair,
    PairGenerator,
    ParamError,
    camera_for,
    list_images,
    load_cameras,
    render_world,
    resolve_data_dir,
    world_identity,
)
from pe3d.devices import DTYPES, resolve_device, resolve_dtype
from pe3d.styles.pretrained import resolve_model_dir
from pe3d.styles.registry import register_generator
from pe3d.styles.spec import StyleSpec

PIPELINE_MARKER = "model_index.json"
"""File at the top of every saved diffusers pipeline."""
SOURCES = ("folder", "world", "eg3d")
"""Where input portraits come from (``params.source``)."""
EG3D_CAMERAS = "dataset.json"
"""EG3D's camera file of an image folder (``{"labels": [[name, [25 floats]], ...]}``)."""


def quantize(image: Tensor) -> Tensor:
    """``image`` rounded to 8 bits (as written to PNG), back as float in ``[0, 1]``."""
    return quantize_uint8(image).float() / 255.0


def caption_to_instruction(template: str, caption: str) -> str:
    """The InstructPix2Pix instruction made from a BLIP caption: ``template.format(caption=caption)``."""
    return template.format(caption=caption).strip()


@register_generator("instruct-pix2pix")
class InstructPix2PixGenerator(PairGenerator):
    """Edited image = InstructPix2Pix's edit of the input (see the module docstring)."""

    @dataclass
    class Params:
        """Settings of ``generator: instruct-pix2pix`` (see the module docstring).

        ``model``: diffusers folder or cached hub id; ``variant``: weight variant to load
        (e.g. ``fp16``); ``cache_dir``: Hugging Face cache to search (``""``: the default);
        ``steps`` / ``guidance_scale`` / ``image_guidance_scale``: the InstructPix2Pix
        sampler (its defaults: 100, 7.5, 1.5); ``device`` (``auto``: this rank's GPU, else
        CPU) / ``dtype`` (``auto``: float16 on GPU); ``safety_checker``: keep the pipeline's
        safety checker (off by default: it blacks out flagged edits, which would become
        pseudo labels); ``source`` / ``dir`` / ``cameras`` / ``eg3d`` / ``truncation_psi`` /
        ``truncation_cutoff``: input portraits; ``references``:
        folder of reference images for image prompts (``""``: edit another portrait);
        ``captioner``: BLIP settings; ``instruction``: how a caption becomes the instruction.
        """

        model: str = "timbrooks/instruct-pix2pix"
        variant: str = ""
        cache_dir: str = ""
        steps: int = 100
        guidance_scale: float = 7.5
        image_guidance_scale: float = 1.5
        device: str = "auto"
        dtype: str = "auto"
        safety_checker: bool = False
        source: str = "folder"
        dir: str = ""
        cameras: str = EG3D_CAMERAS
        eg3d: str = ""
        truncation_psi: float = 0.7
        truncation_cutoff: int = 14
        references: str = ""
        captioner: CaptionerConfig = field(default_factory=CaptionerConfig)
        instruction: str = "{caption}"

    @classmethod
    def validate_params(cls, params: Any, spec: StyleSpec) -> None:
        """Value checks only (files and models are looked up when the generator is built)."""
        if params.source not in SOURCES:
            raise ParamError("source", f"must be one of {list(SOURCES)}, got {params.source!r}")
        if params.steps < 1:
            raise ParamError("steps", f"must be >= 1, got {params.steps}")
        for key in ("guidance_scale", "image_guidance_scale"):
            if getattr(params, key) < 0:
                raise ParamError(key, f"must be >= 0, got {getattr(params, key)}")
        for key, config in (("", params), ("captioner.", params.captioner)):
            if config.dtype not in DTYPES:
                raise ParamError(f"{key}dtype", f"must be one of {list(DTYPES)}, got {config.dtype!r}")
            if config.device != "auto":
                try:
                    torch.device(config.device)
                except RuntimeError:
                    raise ParamError(f"{key}device", f"not a torch device: {config.device!r}") from None
        cap = params.captioner
        if cap.max_new_tokens < 1 or not 0 <= cap.min_new_tokens <= cap.max_new_tokens:
            raise ParamError("captioner", f"need 0 <= min_new_tokens <= max_new_tokens and max_new_tokens >= 1, got "
                             f"{cap.min_new_tokens} / {cap.max_new_tokens}")
        if cap.num_beams < 1:
            raise ParamError("captioner.num_beams", f"must be >= 1, got {cap.num_beams}")
        try:
            example = caption_to_instruction(params.instruction, "a caption")
        except (KeyError, IndexError, ValueError) as error:
            raise ParamError("instruction", f"{params.instruction!r} must be a template with only {{caption}}: {error}") from None
        if "{caption}" not in params.instruction or not example:
            raise ParamError("instruction", f"{params.instruction!r} must contain {{caption}}")
        if params.truncation_psi < 0 or params.truncation_cutoff < 0:
            raise ParamError("truncation_psi", f"truncation_psi and truncation_cutoff must be >= 0, got "
                             f"{params.truncation_psi} / {params.truncation_cutoff}")
        if spec.pairs.resolution % 8:
            raise ConfigError(f"{spec.style_file}: key 'pairs.resolution': InstructPix2Pix needs a multiple of 8, got {spec.pairs.resolution}")

    def __init__(self, spec: StyleSpec, params: Any) -> None:
        super().__init__(spec, params)
        self._images, self._cameras = self._portrait_folder() if params.source == "folder" else ([], {})
        self._eg3d_path = self._eg3d_file() if params.source == "eg3d" else None
        self._references = self._reference_images() if params.references else []
        self._model_dir = resolve_model_dir(params.model, PIPELINE_MARKER, "InstructPix2Pix pipeline", params.cache_dir)
        self._captioner_needed = bool(spec.image_prompts) and spec.pairs.image_fraction > 0
        if self._captioner_needed:
            resolve_model_dir(params.captioner.model, BLIP_MARKER, "BLIP captioner", params.captioner.cache_dir)
        self._device = resolve_device(params.device)
        self._dtype = resolve_dtype(params.dtype, self._device)
        self._pipe: Any = None
        self._blip: Captioner | None = None
        self._eg3d: Any = None

    def _portrait_folder(self) -> tuple[list[Path], dict[str, Tensor]]:
        """Images of ``params.dir`` (recursive, sorted) and its camera labels."""
        folder = self._data_dir(self.params.dir, "dir", "a folder of input portraits (e.g. EG3D's FFHQ-512) is required")
        images = list_images(folder, recursive=True)
        offset = self.spec.pairs.identity_offset
        if len(images) <= offset:
            raise self._error("dir", f"{len(images)} images ({', '.join(IMAGE_SUFFIXES)}) in {folder}, need more than "
                              f"pairs.identity_offset={offset}")
        camera_file = folder / self.params.cameras
        return images, load_cameras(camera_file) if camera_file.is_file() else {}

    def _eg3d_file(self) -> Path:
        if not self.params.eg3d:
            raise self._error("eg3d", "an EG3D generator file is required (from `pe3d import-eg3d ffhq512-128.pkl OUT.safetensors`)")
        path = Path(self.params.eg3d).expanduser()
        if not path.is_file():
            raise self._error("eg3d", f"file not found: {path.absolute()}")
        return path

    def _reference_images(self) -> list[Path]:
        folder = self._data_dir(self.params.references, "references", "")
        images = list_images(folder, recursive=True)
        if not images:
            raise self._error("references", f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        return images

    def _error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.spec.style_file}: key 'params.{key}': {message}")

    def _data_dir(self, value: str, key: str, missing: str) -> Path:
        if not value and missing:
            raise self._error(key, missing)
        try:
            folder = resolve_data_dir(self.spec, value, key)
        except ParamError as error:
            raise self._error(key, error.message) from None
        if not folder.is_dir():
            raise self._error(key, f"folder not found: {folder}")
        return folder

    def max_pairs(self) -> int | None:
        """Unlimited for world renders; the images after ``pairs.identity_offset`` for a folder."""
        if self.params.source == "folder":
            return len(self._images) - self.spec.pairs.identity_offset
        return None

    # ------------------------------------------------------------------ models (lazy)
    def pipeline(self) -> Any:
        """The ``StableDiffusionInstructPix2PixPipeline`` (loaded at the first call)."""
        if self._pipe is None:
            from diffusers import StableDiffusionInstructPix2PixPipeline

            extra: dict[str, Any] = {} if self.params.safety_checker else {"safety_checker": None, "requires_safety_checker": False}
            pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
                self._model_dir, local_files_only=True, variant=self.params.variant or None, **extra
            )
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe.to(self._device, self._dtype)
        return self._pipe

    def eg3d(self) -> Any:
        """The EG3D :class:`~pe3d.eg3d.generator.TriPlaneGenerator` of ``source: eg3d`` (loaded at the first call)."""
        if self._eg3d is None:
            from pe3d.eg3d.importer import load_eg3d

            self._eg3d = load_eg3d(self._eg3d_path, map_location=self._device)
        return self._eg3d

    def captioner(self) -> Captioner:
        """The BLIP :class:`~pe3d.styles.captioning.Captioner` (loaded at the first call)."""
        if self._blip is None:
            self._blip = Captioner(self.params.captioner)
        return self._blip

    def edit(self, image: Tensor, instruction: str, seed: int) -> Tensor:
        """InstructPix2Pix's edit of ``image [3, H, W]`` under ``instruction``, noise seeded with ``seed``."""
        p = self.params
        with torch.inference_mode():
            out = self.pipeline()(
                prompt=instruction,
                image=image[None],
                num_inference_steps=p.steps,
                guidance_scale=p.guidance_scale,
                image_guidance_scale=p.image_guidance_scale,
                generator=torch.Generator().manual_seed(int(seed)),
                output_type="pt",
            ).images
        return quantize(out[0].float().cpu())

    # ------------------------------------------------------------------ pairs
    def _portrait(self, position: int, rng: torch.Generator) -> tuple[Tensor, Tensor, int]:
        """Image, camera and world identity (``-1`` for a folder) of portrait ``position``."""
        resolution = self.spec.pairs.resolution
        if self.params.source == "folder":
            path = self._images[position]
            return quantize(load_square_image(path, resolution)), camera_for(self._cameras, path), -1
        camera = self.sample_camera(rng)
        if self.params.source == "eg3d":
            return self._eg3d_portrait(position, camera), camera, position
        identity = world_identity(self.spec.pairs.split, position)
        rgb, _ = render_world([identity], [camera], resolution, self.spec.pairs.supersample)
        return quantize(rgb[0]), camera, identity

    def _eg3d_portrait(self, seed: int, camera: Tensor) -> Tensor:
        """EG3D sample ``seed`` (its latent's seed) rendered at ``camera``, as ``[3, R, R]``."""
        from pe3d.eg3d import to_unit_range

        generator = self.eg3d()
        z = torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(int(seed))).to(self._device)
        front = label_from_yaw_pitch(0.0, 0.0).to(self._device)
        cuda = [self._device] if self._device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(int(seed))  # EG3D's importance sampling draws from the global generator
            ws = generator.mapping(z, front, truncation_psi=self.params.truncation_psi, truncation_cutoff=self.params.truncation_cutoff)
            image = to_unit_range(generator.synthesis(ws, camera[None].to(self._device), noise_mode="const").image).float().cpu()
        resolution = self.spec.pairs.resolution
        if image.shape[-1] != resolution:
            image = F.interpolate(image, size=(resolution, resolution), mode="bicubic", antialias=True, align_corners=False)
        return quantize(image[0])

    def _reference(self, position: int, rng: torch.Generator, seed: int) -> Tensor:
        """An image prompt in the target style (see the module docstring)."""
        if self._references:
            pick = int(torch.randint(len(self._references), (1,), generator=rng))
            return quantize(load_square_image(self._references[pick], self.spec.pairs.resolution))
        if self.params.source == "folder":
            others = max(1, len(self._images) - 1)
            other = (position + 1 + int(torch.randint(others, (1,), generator=rng))) % len(self._images)
        else:
            other = position + 1 + int(torch.randint(1_000, (1,), generator=rng))
        image, _, _ = self._portrait(other, rng)
        return self.edit(image, self.pick_prompt(rng), seed + 1)

    def _pair(self, index: int) -> Pair:
        rng = self.rng(index)
        seed = self.pair_seed(index)
        position = self.spec.pairs.identity_offset + index
        image, camera, identity = self._portrait(position, rng)
        instruction = self.pick_prompt(rng)
        reference = None
        if self._captioner_needed and self.wants_reference(rng):
            reference = self._reference(position, rng, seed)
            instruction = caption_to_instruction(self.params.instruction, self.captioner()(reference[None])[0])
        return Pair(
            input=image,
            edited=self.edit(image, instruction, seed),
            camera=camera,
            prompt=instruction,
            reference=reference,
            identity=identity,
            seed=seed,
        )

    def generate(self, indices: Sequence[int]) -> list[Pair]:
        """Pairs ``indices``, one InstructPix2Pix call (two for a generated reference) each."""
        if self.params.source == "folder" and indices and max(indices) >= self.max_pairs():  # type: ignore[operator]
            raise IndexError(f"pair {max(indices)}: the folder has only {self.max_pairs()} portraits after the offset")
        return [self._pair(int(index)) for index in indices]
