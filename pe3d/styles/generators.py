"""Pair generators: make (input portrait, edited portrait) pseudo-label pairs for a style.

They stand in for the paper's 2D editor (InstructPix2Pix, Sec. 3.2 / 4.1), or run it
(``instruct-pix2pix``). Built-ins:

``filter``
    ``params: {filter: <name>, source: world|folder, dir: <images>, cameras: cameras.json,
    background_texture: 0.0}``.
    ``source: world`` renders a world identity at a camera from the style's pose
    distribution (``pairs.pose``) and edits it with
    :func:`pe3d.world.filters.apply_style_filter`; the image prompt of a pair is the same
    filter applied to *another* identity (a reference in the target style).
    ``background_texture``: the share of world pairs whose white background is replaced by a
    random textured wall (:mod:`pe3d.data.backgrounds`) before the filter, which leaves it as
    it is: pairs with backgrounds like a photo's.
    ``source: folder`` edits arbitrary portraits from ``dir`` instead (no part masks),
    cameras from ``cameras.json`` when present, else frontal.

``folder``
    ``params: {dir: <folder>, align: none|face|auto}`` with ``before/`` and ``after/`` images
    matched by file name (stem): user- or artist-made example pairs, as for the paper's fast
    adaptation (Sec. 4.3). ``align: none`` centre-crops both images (right for renders framed
    like the world's); ``face`` aligns both with the face of the ``before`` image, exactly as
    ``pe3d edit`` aligns a photo, and estimates its camera (an image without a face is an
    error naming it); ``auto`` does the same but centre-crops images where no face is found.
    Cameras from ``<dir>/cameras.json`` win when present; otherwise the estimate, else frontal.
    ``framing: world|eg3d``: the crop of aligned photos, as the model expects its input
    (``eg3d``: EG3D's FFHQ crop, for the imported 3DPE editor; ``pe3d fit adapt`` sets it from the
    base editor).

``instruct-pix2pix``
    The paper's 2D editor with BLIP captions for image prompts: :mod:`pe3d.styles.ip2p`.

Every generator is deterministic per pair index: pair ``i`` depends only on the style and
``i`` (its seed is :meth:`PairGenerator.pair_seed`), so a pair set can be extended or
resumed and the files are identical to an uninterrupted run.

Writing a new generator (e.g. in a style folder's ``generator.py``)::

    @register_generator("my-editor")
    class MyEditor(PairGenerator):
        @dataclass
        class Params:
            strength: float = 1.0

        def generate(self, indices):
            return [Pair(...) for i in indices]
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from PIL import Image
from torch import Tensor

from pe3d.data.backgrounds import MINI_WALL, WallTexture, wall_background
from pe3d.geometry import label_from_yaw_pitch, sample_camera_labels
from pe3d.images import load_square_image
from pe3d.styles.registry import register_generator
from pe3d.styles.spec import StyleSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""Image files read from folders."""
CAMERAS_FILE = "cameras.json"
"""Optional camera file of image folders (EG3D ``dataset.json`` layout or ``{name: label}``)."""
FOLDER_ALIGN_MODES = ("none", "face", "auto")
"""Values of the ``folder`` generator's ``align`` parameter."""


class ParamError(ValueError):
    """A generator parameter is invalid; ``key`` is its path below ``params``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"params.{key}: {message}")
        self.key = key
        self.message = message


@dataclass
class Pair:
    """One pseudo-label pair.

    Attributes:
        input: ``[3, H, W]`` float in ``[0, 1]``, the portrait ``I``.
        edited: ``[3, H, W]`` float in ``[0, 1]``, the pseudo label ``I_gt``.
        camera: ``[25]`` EG3D camera label of ``input`` (and ``edited``).
        prompt: the text instruction (for image-prompt pairs: the caption-like instruction
            the 2D editor used, as the paper's BLIP caption).
        reference: ``[3, H, W]`` image prompt in the target style, or ``None`` (text pair).
        identity: world identity index of ``input``, ``-1`` when not from the world.
        seed: the pair's own seed.
    """

    input: Tensor
    edited: Tensor
    camera: Tensor
    prompt: str
    reference: Tensor | None = None
    identity: int = -1
    seed: int = 0

    @property
    def prompt_kind(self) -> str:
        """``"image"`` when the pair carries a reference image, else ``"text"``."""
        return "text" if self.reference is None else "image"

    def check(self) -> None:
        """Raise ``ValueError`` if shapes or ranges are off."""
        if self.input.ndim != 3 or self.input.shape[0] != 3:
            raise ValueError(f"pair input must be [3, H, W], got {tuple(self.input.shape)}")
        if self.edited.shape != self.input.shape:
            raise ValueError(f"pair edited {tuple(self.edited.shape)} must match input {tuple(self.input.shape)}")
        if self.reference is not None and self.reference.shape != self.input.shape:
            raise ValueError(f"pair reference {tuple(self.reference.shape)} must match input {tuple(self.input.shape)}")
        if self.camera.shape != (25,):
            raise ValueError(f"pair camera must be [25], got {tuple(self.camera.shape)}")
        if not self.prompt:
            raise ValueError("pair prompt must be a non-empty string")


@dataclass
class NoParams:
    """Parameters of a generator that takes none."""


class PairGenerator(ABC):
    """Base class of pair generators; subclasses register with ``@register_generator(name)``.

    Subclasses set ``Params`` (a dataclass with defaults: the schema of ``style.yaml``'s
    ``params``), may override :meth:`validate_params` and :meth:`max_pairs`, and implement
    :meth:`generate`.
    """

    Params: ClassVar[type] = NoParams
    generator_name: ClassVar[str] = ""

    def __init__(self, spec: StyleSpec, params: Any) -> None:
        self.spec = spec
        self.params = params

    @classmethod
    def validate_params(cls, params: Any, spec: StyleSpec) -> None:
        """Check parameter values; raise :class:`ParamError` naming the field."""

    def max_pairs(self) -> int | None:
        """How many distinct pairs this generator can make (``None``: unlimited)."""
        return None

    @abstractmethod
    def generate(self, indices: Sequence[int]) -> list[Pair]:
        """Make the pairs with the given indices (each depends only on its index)."""

    # ------------------------------------------------------------------ helpers
    def pair_seed(self, index: int) -> int:
        """Seed of pair ``index``: a function of ``spec.pairs.seed`` and ``index`` only."""
        return (int(self.spec.pairs.seed) * 1_000_003 + int(index) * 7_919 + 17) % (2**62)

    def rng(self, index: int) -> torch.Generator:
        """A fresh ``torch.Generator`` seeded with :meth:`pair_seed`."""
        return torch.Generator().manual_seed(self.pair_seed(index))

    def pick_prompt(self, rng: torch.Generator) -> str:
        """A train prompt of the style, drawn with ``rng``."""
        prompts = self.spec.prompts.train
        return prompts[int(torch.randint(len(prompts), (1,), generator=rng))]

    def wants_reference(self, rng: torch.Generator) -> bool:
        """Whether this pair gets an image prompt (``image_prompts`` and ``pairs.image_fraction``)."""
        draw = float(torch.rand((), generator=rng))
        return bool(self.spec.image_prompts) and draw < self.spec.pairs.image_fraction

    def sample_camera(self, rng: torch.Generator) -> Tensor:
        """``[25]`` camera label from ``spec.pairs.pose``."""
        pose = self.spec.pairs.pose
        if pose.kind == "frontal":
            return label_from_yaw_pitch(0.0, 0.0)[0]
        return sample_camera_labels(
            1,
            yaw_std=pose.yaw_std,
            pitch_std=pose.pitch_std,
            yaw_limit=pose.yaw_limit,
            pitch_limit=pose.pitch_limit,
            generator=rng,
        )[0]


# ----------------------------------------------------------------------------- image folders


def resolve_data_dir(spec: StyleSpec, value: str, key: str) -> Path:
    """A ``params`` folder: absolute as given, relative to the style folder otherwise.

    A relative path may not leave the style folder (``..``); use an absolute path for data
    kept elsewhere.
    """
    if not value:
        raise ParamError(key, "a folder is required")
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    base = spec.path.resolve()
    resolved = (base / path).resolve()
    if resolved != base and base not in resolved.parents:
        raise ParamError(key, f"{value!r} escapes the style folder; use an absolute path for data kept elsewhere")
    return resolved


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` sorted by name (by relative path when ``recursive``, e.g. the
    ``00000/img00000000.png`` layout of EG3D's FFHQ folders)."""
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_cameras(path: Path) -> dict[str, Tensor]:
    """Read a camera file: EG3D ``{"labels": [[name, [25 floats]], ...]}`` or ``{name: [25 floats]}``.

    Keys are file names; lookups also match by stem. Raises ``ValueError`` naming the file.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read cameras: {error}") from error
    if isinstance(data, dict) and "labels" in data:
        entries = data["labels"] or []
        if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 2 for e in entries):
            raise ValueError(f"{path}: 'labels' must be a list of [name, [25 floats]]")
        items = [(str(name), label) for name, label in entries]
    elif isinstance(data, dict):
        items = [(str(name), label) for name, label in data.items()]
    else:
        raise ValueError(f"{path}: expected a JSON object")
    out: dict[str, Tensor] = {}
    for name, label in items:
        if not isinstance(label, list) or len(label) != 25 or not all(isinstance(v, (int, float)) for v in label):
            raise ValueError(f"{path}: camera of {name!r} must be a list of 25 numbers")
        out[name] = torch.tensor(label, dtype=torch.float32)
        out.setdefault(Path(name).stem, out[name])
    return out


def lookup_camera(cameras: dict[str, Tensor], image: Path) -> Tensor | None:
    """The camera of ``image`` in a :func:`load_cameras` mapping (by name, then stem), or ``None``."""
    for key in (image.name, image.stem):
        if key in cameras:
            return cameras[key].clone()
    return None


def camera_for(cameras: dict[str, Tensor], image: Path) -> Tensor:
    """The camera of ``image`` in a :func:`load_cameras` mapping (by name, then stem); frontal if absent."""
    camera = lookup_camera(cameras, image)
    return label_from_yaw_pitch(0.0, 0.0)[0] if camera is None else camera


# ----------------------------------------------------------------------------- world helpers


def world_identity(split: str, position: int) -> int:
    """World identity index at ``position`` of ``split`` (``train`` or ``heldout``)."""
    from pe3d.world import WorldSplit

    return int(WorldSplit().indices(split, 1, position)[0])


def world_seed() -> int:
    """Seed of the world whose identities the generators draw (``WorldSplit().seed``)."""
    from pe3d.world import WorldSplit

    return int(WorldSplit().seed)


def render_world(identity_indices: Sequence[int], cameras: Sequence[Tensor], resolution: int, supersample: int = 1) -> tuple[Tensor, Tensor]:
    """RGB ``[N, 3, R, R]`` and part masks of world identities (:func:`world_seed`) at ``cameras`` (``[25]`` each)."""
    from pe3d.world import render_identities, sample_identity

    seed = world_seed()
    identities = [sample_identity(seed, int(index)) for index in identity_indices]
    render = render_identities(identities, torch.stack(list(cameras)), resolution=resolution, supersample=supersample)
    return render.rgb, render.parts


def filter_names() -> list[str]:
    """Names of the 2D style filters of the embedded world."""
    from pe3d.world.filters import STYLE_FILTERS

    return sorted(STYLE_FILTERS)


def apply_filter(name: str, rgb: Tensor, parts: Tensor | None, seed: int) -> Tensor:
    """:func:`pe3d.world.filters.apply_style_filter` on one image ``[3, H, W]`` under a fixed seed."""
    from pe3d.world.filters import apply_style_filter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = apply_style_filter(name, rgb[None], None if parts is None else parts[None])
    return out[0].clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- built-ins


@register_generator("filter")
class FilterGenerator(PairGenerator):
    """Edited image = a world 2D style filter of the input (see the module docstring)."""

    @dataclass
    class Params:
        """``filter``: a name of ``pe3d.world.filters.STYLE_FILTERS``; ``source``: ``world`` or
        ``folder``; ``dir``: portraits for ``source: folder``; ``cameras``: their camera file;
        ``background_texture``: share of world pairs on a textured background."""

        filter: str = ""
        source: str = "world"
        dir: str = ""
        cameras: str = CAMERAS_FILE
        background_texture: float = 0.0

    @classmethod
    def validate_params(cls, params: Any, spec: StyleSpec) -> None:
        """``filter`` must exist; ``source: folder`` needs a ``dir`` holding images."""
        try:
            names = filter_names()
        except ImportError as error:
            raise ParamError("filter", f"the world's style filters are unavailable: {error}") from error
        if params.filter not in names:
            raise ParamError("filter", f"unknown style filter {params.filter!r} (known: {', '.join(names)})")
        if params.source not in ("world", "folder"):
            raise ParamError("source", f"must be 'world' or 'folder', got {params.source!r}")
        if not 0.0 <= params.background_texture <= 1.0:
            raise ParamError("background_texture", f"must be in [0, 1], got {params.background_texture}")
        if params.source == "folder":
            folder = resolve_data_dir(spec, params.dir, "dir")
            if not list_images(folder):
                raise ParamError("dir", f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")

    def __init__(self, spec: StyleSpec, params: Any) -> None:
        super().__init__(spec, params)
        self._images: list[Path] = []
        self._cameras: dict[str, Tensor] = {}
        if params.source == "folder":
            folder = resolve_data_dir(spec, params.dir, "dir")
            self._images = list_images(folder)
            if (folder / params.cameras).is_file():
                self._cameras = load_cameras(folder / params.cameras)

    def max_pairs(self) -> int | None:
        """Unlimited for world renders; the number of images for a folder."""
        return len(self._images) if self.params.source == "folder" else None

    def _identity(self, position: int) -> int:
        return world_identity(self.spec.pairs.split, self.spec.pairs.identity_offset + position)

    def _render(self, identity_indices: list[int], cameras: list[Tensor]) -> tuple[Tensor, Tensor]:
        return render_world(identity_indices, cameras, self.spec.pairs.resolution, self.spec.pairs.supersample)

    def generate(self, indices: Sequence[int]) -> list[Pair]:
        """Pairs for ``indices`` (world renders are batched)."""
        if self.params.source == "folder":
            return [self._folder_pair(index) for index in indices]
        plans = []
        for index in indices:
            rng = self.rng(index)
            camera = self.sample_camera(rng)
            prompt = self.pick_prompt(rng)
            ref_position = None
            ref_camera = None
            if self.wants_reference(rng):
                ref_position = index + 1 + int(torch.randint(1_000, (1,), generator=rng))
                ref_camera = self.sample_camera(rng)
            plans.append((index, camera, prompt, ref_position, ref_camera))
        rgb, parts = self._render([self._identity(p[0]) for p in plans], [p[1] for p in plans])
        for k, plan in enumerate(plans):
            rgb[k] = self._maybe_textured_background(plan[0], rgb[k], parts[k], plan[1])
        with_ref = [p for p in plans if p[3] is not None]
        refs: dict[int, Tensor] = {}
        if with_ref:
            ref_rgb, ref_parts = self._render([self._identity(p[3]) for p in with_ref], [p[4] for p in with_ref])
            for k, plan in enumerate(with_ref):
                refs[plan[0]] = apply_filter(self.params.filter, ref_rgb[k], ref_parts[k], self.pair_seed(plan[0]) + 1)
        pairs = []
        for k, (index, camera, prompt, _, _) in enumerate(plans):
            seed = self.pair_seed(index)
            pairs.append(
                Pair(
                    input=rgb[k].clamp(0.0, 1.0),
                    edited=apply_filter(self.params.filter, rgb[k], parts[k], seed),
                    camera=camera,
                    prompt=prompt,
                    reference=refs.get(index),
                    identity=self._identity(index),
                    seed=seed,
                )
            )
        return pairs

    def _maybe_textured_background(self, index: int, rgb: Tensor, parts: Tensor, camera: Tensor) -> Tensor:
        """``rgb [3, R, R]`` on a textured wall for a ``background_texture`` share of pair indices.

        Drawn from a generator of its own (pair seed + 2), so pairs without it are bit-identical
        to those of a style that does not set it. The head is cut out with the part labels: exact
        for ``pairs.supersample: 1``; supersampled renders keep a thin white fringe."""
        share = self.params.background_texture
        if share <= 0:
            return rgb
        rng = torch.Generator().manual_seed(self.pair_seed(index) + 2)
        if float(torch.rand((), generator=rng)) >= share:
            return rgb
        wall = wall_background(camera[None].float(), rgb.shape[-1], MINI_WALL, WallTexture.random(rng))[0]
        head = (parts > 0).to(rgb.dtype)[None]
        return rgb * head + wall * (1.0 - head)

    def _folder_pair(self, index: int) -> Pair:
        if not 0 <= index < len(self._images):
            raise IndexError(f"pair {index}: the folder has only {len(self._images)} images")
        rng = self.rng(index)
        prompt = self.pick_prompt(rng)
        seed = self.pair_seed(index)
        resolution = self.spec.pairs.resolution
        image = load_square_image(self._images[index], resolution)
        reference = None
        if len(self._images) > 1 and self.wants_reference(rng):
            other = (index + 1 + int(torch.randint(len(self._images) - 1, (1,), generator=rng))) % len(self._images)
            reference = apply_filter(self.params.filter, load_square_image(self._images[other], resolution), None, seed + 1)
        return Pair(
            input=image,
            edited=apply_filter(self.params.filter, image, None, seed),
            camera=camera_for(self._cameras, self._images[index]),
            prompt=prompt,
            reference=reference,
            identity=-1,
            seed=seed,
        )


@register_generator("folder")
class FolderGenerator(PairGenerator):
    """User-supplied before / after pairs (e.g. artist-made examples for fast adaptation)."""

    @dataclass
    class Params:
        """``dir``: folder with ``before``/``after`` sub-folders of images matched by file stem,
        and an optional ``cameras`` file; ``align``: one of :data:`FOLDER_ALIGN_MODES` (see the module docstring);
        ``framing``: the crop of aligned photos (``world`` or ``eg3d``, :func:`pe3d.faces.prepare_portrait`)."""

        dir: str = ""
        before: str = "before"
        after: str = "after"
        cameras: str = CAMERAS_FILE
        align: str = "none"
        framing: str = "world"

    @staticmethod
    def _match(params: Any, spec: StyleSpec) -> tuple[list[tuple[Path, Path]], Path]:
        folder = resolve_data_dir(spec, params.dir, "dir")
        before = {p.stem: p for p in list_images(folder / params.before)}
        after = {p.stem: p for p in list_images(folder / params.after)}
        if not before:
            raise ParamError("before", f"no images in {folder / params.before}")
        missing = sorted(set(before) ^ set(after))
        if missing:
            side = params.after if missing[0] in before else params.before
            raise ParamError("dir", f"{missing[0]!r} has no match in {folder / side} ({len(missing)} unmatched)")
        return [(before[stem], after[stem]) for stem in sorted(before)], folder

    @classmethod
    def validate_params(cls, params: Any, spec: StyleSpec) -> None:
        """``dir`` must hold matching ``before``/``after`` images; a camera file must parse; ``align`` must be known."""
        if params.align not in FOLDER_ALIGN_MODES:
            raise ParamError("align", f"must be one of {list(FOLDER_ALIGN_MODES)}, got {params.align!r}")
        from pe3d.faces.align import FRAMINGS

        if params.framing not in FRAMINGS:
            raise ParamError("framing", f"must be one of {list(FRAMINGS)}, got {params.framing!r}")
        _, folder = cls._match(params, spec)
        if (folder / params.cameras).is_file():
            try:
                load_cameras(folder / params.cameras)
            except ValueError as error:
                raise ParamError("cameras", str(error)) from error

    def __init__(self, spec: StyleSpec, params: Any) -> None:
        super().__init__(spec, params)
        self._pairs, folder = self._match(params, spec)
        camera_file = folder / params.cameras
        self._cameras = load_cameras(camera_file) if camera_file.is_file() else {}

    def max_pairs(self) -> int | None:
        """The number of matched before/after images."""
        return len(self._pairs)

    def generate(self, indices: Sequence[int]) -> list[Pair]:
        """Pairs ``indices`` in file-name order; references are other pairs' ``after`` images."""
        out = []
        for index in indices:
            if not 0 <= index < len(self._pairs):
                raise IndexError(f"pair {index}: the folder has only {len(self._pairs)} pairs")
            rng = self.rng(index)
            prompt = self.pick_prompt(rng)
            before, after = self._pairs[index]
            reference = None
            if len(self._pairs) > 1 and self.wants_reference(rng):
                other = (index + 1 + int(torch.randint(len(self._pairs) - 1, (1,), generator=rng))) % len(self._pairs)
                reference = self._crop_pair(*self._pairs[other])[1]
            image, edited, camera = self._crop_pair(before, after)
            out.append(
                Pair(
                    input=image,
                    edited=edited,
                    camera=camera,
                    prompt=prompt,
                    reference=reference,
                    identity=-1,
                    seed=self.pair_seed(index),
                )
            )
        return out

    def _crop_pair(self, before: Path, after: Path) -> tuple[Tensor, Tensor, Tensor]:
        """Input crop, edited crop and camera of one pair, as ``params.align`` says."""
        resolution = self.spec.pairs.resolution
        if self.params.align != "none":
            from pe3d.faces import FaceSelectionError, align_pair
            from pe3d.images import load_image as load_photo

            try:
                prepared, edited = align_pair(load_photo(before), load_photo(after), resolution, "largest", str(before),
                                              framing=self.params.framing)
            except FaceSelectionError as error:
                if self.params.align == "face":
                    raise FaceSelectionError(f"{error} (or set params.align to auto or none)", error.count) from None
                warnings.warn(f"{error}; the pair is centre-cropped instead (align: auto)", stacklevel=2)
            else:
                camera = lookup_camera(self._cameras, before)
                return prepared.image, edited, prepared.camera.reshape(25).float() if camera is None else camera
        return load_square_image(before, resolution), load_square_image(after, resolution), camera_for(self._cameras, before)

