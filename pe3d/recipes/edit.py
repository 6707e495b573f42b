"""``pe3d edit``: photos in; the edited image, turntable GIF / MP4, depth maps and a mesh out.

A real photo goes through :func:`pe3d.faces.prepare_portrait`: dlib finds the face (one, or
the one ``face`` picks), the crop is aligned like the world's frontal renders and the camera
is estimated from the landmarks, so the edit is rendered at the photo's own viewpoint.
``align=False`` keeps the old path for inputs that are already framed like the world (e.g.
world renders): centre square, frontal camera.

Files per photo (in ``out``): ``input.png`` (what the model sees), ``edited.png`` (the edit
at the input camera), ``depth.png``, ``overview.png`` (photo | model input | edit | views at
yaw -30 / +30 | depth, one strip), ``turntable.gif`` (``input | view | depth``, ping-pong),
``turntable.mp4`` (one sweep), ``depth/view_000.png ...`` (the turntable's depth maps),
``portrait.json`` (face box, detection score, camera angles, 25-d label; aligned photos only)
and, when asked, a PLY mesh of the edited head.

A folder of photos (:func:`edit_folder`) writes one subfolder per photo, shows a progress
bar, reports and skips photos that fail, and ends with a summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from pe3d.images import ImageLoadError, center_square, load_image
from pe3d.io import atomic_write, atomic_write_text
from pe3d.errors import InvalidInput
from pe3d.pipeline import EditPipeline
from pe3d.refinement import MAX_STRENGTH, RefineConfig
from pe3d.turntable import (
    depth_to_gray,
    to_uint8,
    turntable_cameras,
    write_depth_pngs,
    write_turntable_gif,
    write_turntable_mp4,
)

ALIGNED_SIZE = 256
"""Side of the aligned crop saved as ``input.png`` (the pipeline resizes it to the model's input)."""
PHOTO_REFINE_STEPS = 200
"""``refine_steps`` when none is given and the editor's prior is the shipped one: for an aligned photo (out of the
world the mini models were trained on) the face's detail comes back, and for an input framed like the world
(``align=False``) the edit gains at the input view and, kept to the visual hull and out of the empty space, a
little at the novel views too (docs/results/quality/refinement.md; each step renders a quarter of the rays,
:class:`RefineConfig`'s default); 0 with another editor."""
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
"""File types a batch folder is scanned for."""


def _activate_style(pipe: EditPipeline, style: str):
    """Load ``style`` (found once) and its adapter into ``pipe`` when the style folder has one; returns its spec."""
    from pe3d.adapters import ADAPTER_FILE
    from pe3d.styles.discovery import load_named_style

    spec = load_named_style(style)
    if (spec.path / ADAPTER_FILE).is_file():
        pipe.set_adapter(pipe.load_adapter(spec.path))
    return spec


def _first_training_prompt(spec) -> str:
    """The prompt ``pe3d edit --style`` uses: the style's first training prompt (its first test prompt
    when it has no training prompts)."""
    return (spec.prompts.train or spec.prompts.test)[0]


def resolve_style_prompt(pipe: EditPipeline, style: str) -> str:
    """Load ``style``'s adapter when it has one and return the text prompt to use with it: the style's
    first *training* prompt, the wording the base editor (or the adapter) was trained to follow; the
    test prompts are paraphrases kept for measuring generalisation (``pe3d bench quality``)."""
    return _first_training_prompt(_activate_style(pipe, style))


def resolve_style_prompts(pipe: EditPipeline, style: str) -> tuple[str | None, Path | None]:
    """Load ``style``'s adapter when it has one; return its prompts for this editor: ``(text, reference image file)``.

    A style with a ``reference`` image is prompted by that image (its adapter was trained with it);
    otherwise by its first training prompt (as :func:`resolve_style_prompt`), except on an editor
    without a text encoder (the imported 3DPE release), which gets neither: the caller needs a
    reference image from the user.
    """
    spec = _activate_style(pipe, style)
    if spec.reference_path is not None:
        return None, spec.reference_path
    if pipe.editor.text_encoder is None:
        return None, None
    return _first_training_prompt(spec), None


def style_refine_strength(style: str | None) -> float:
    """The multiple of the photo's missing detail the refinement adds to ``style``'s edits: its ``refine.strength``
    (:class:`pe3d.styles.spec.RefineSpec`; marble_statue 0.5), 1.0 with no style."""
    from pe3d.styles.discovery import load_named_style

    return load_named_style(style).refine.strength if style else 1.0


def _style_needs_reference(style: str) -> InvalidInput:
    return InvalidInput(f"style {style!r}: this editor reads reference images only (no text encoder): give "
                        f"--prompt-image FILE, or name a reference image in the style (reference: IMAGE in its style.yaml)")


@dataclass
class EditSettings:
    """How every photo of one ``pe3d edit`` run is edited.

    Attributes:
        prompt: text prompt (resolved from the style when only a style is given).
        reference: ``[3, H, W]`` reference image prompt, or ``None``.
        views: turntable frames.
        strength: 0 = reconstruction, 1 = full edit.
        resolution: render side in pixels.
        face: ``None`` (exactly one face), ``"largest"`` or an index.
        align: detect / align / estimate the camera (``False``: centre square, frontal camera).
        mesh: PLY file name or path, or ``None`` for no mesh (see :func:`mesh_path`).
        mesh_resolution: marching-cubes grid points per axis.
        refine_steps: test-time detail refinement steps (:mod:`pe3d.refinement`; 0 = the one-pass edit;
            ``None``, as given to :func:`edit_photo`, becomes :func:`default_refine_steps`).
        refine_strength: the multiple of the fitted residual added to the edit (``RefineConfig.strength``;
            ``None``, as given to :func:`edit_photo`, becomes the style's (:func:`style_refine_strength`), else 1).
    """

    prompt: str | None = None
    reference: Tensor | None = None
    views: int = 24
    strength: float = 1.0
    resolution: int = 64
    face: str | int | None = None
    align: bool = True
    mesh: str | None = None
    mesh_resolution: int = 96
    refine_steps: int = 0
    refine_strength: float = 1.0


def default_refine_steps(pipe: EditPipeline) -> int:
    """:data:`PHOTO_REFINE_STEPS` when ``pipe`` can refine with the shipped prior (:meth:`EditPipeline.has_shipped_prior`),
    aligned photo or not, else 0 (the one-pass edit)."""
    return PHOTO_REFINE_STEPS if pipe.has_shipped_prior() else 0


def mesh_path(mesh: str, out: Path, batch: bool) -> Path:
    """Where the mesh goes: a bare file name lands in ``out``; a path is used as given, except
    in batch mode, where its file name lands in each photo's folder."""
    path = Path(mesh)
    if path.suffix.lower() != ".ply":
        raise InvalidInput(f"--mesh {mesh}: the mesh file must end in .ply")
    if batch or path.parent == Path("."):
        return out / path.name
    return path


def prepare_input(image: Tensor, settings: EditSettings, source: str,
                  framing: str = "world", size: int = ALIGNED_SIZE) -> tuple[Tensor, Tensor | None, dict]:
    """``(model input [3, S, S], input camera [25] or None, facts for portrait.json)`` of one photo.

    ``framing`` is the crop the model expects (:attr:`pe3d.pipeline.EditPipeline.framing`), ``size``
    the side of the aligned crop."""
    if not settings.align:
        return center_square(image), None, {}
    from pe3d.faces import FaceSelectionError, prepare_portrait

    try:
        portrait = prepare_portrait(image, size, face=settings.face, source=source, framing=framing)
    except FaceSelectionError as error:
        if error.count != 0:
            raise
        raise FaceSelectionError(f"{error} (or --no-align for an image already framed like the world's renders)", 0) from None
    facts = {
        "face_box": list(portrait.face.box),
        "face_score": portrait.face.score,
        "yaw_deg": portrait.yaw_deg,
        "pitch_deg": portrait.pitch_deg,
        "estimated_yaw_deg": portrait.estimate.yaw_deg,
        "estimated_pitch_deg": portrait.estimate.pitch_deg,
        "roll_deg": portrait.estimate.roll_deg,
        "reprojection_rms": portrait.estimate.rms_error,
        "camera": [round(float(v), 6) for v in portrait.camera],
    }
    return portrait.image, portrait.camera, facts


def _save_png(path: Path, image: Tensor) -> Path:
    picture = Image.fromarray(to_uint8(image))
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


OVERVIEW_TILE = 128
"""Side of each tile of ``overview.png``."""
OVERVIEW_YAWS_DEG = (-30.0, 30.0)
"""Novel views shown on ``overview.png`` (the turntable frames nearest these yaws)."""


def overview_image(photo: Tensor, model_input: Tensor, edited: Tensor, views: Tensor, cameras: Tensor, depth: Tensor) -> Image.Image:
    """One strip: photo (centre square) | model input | edit at the input camera | novel views | depth.

    ``views [N, 3, R, R]`` are the turntable renders at ``cameras [N, 25]``; the frames nearest
    :data:`OVERVIEW_YAWS_DEG` are shown.
    """
    from pe3d.geometry import yaw_pitch_from_cam2world

    yaws = torch.rad2deg(yaw_pitch_from_cam2world(cameras[:, :16].reshape(-1, 4, 4))[0])
    picks = [int((yaws - target).abs().argmin()) for target in OVERVIEW_YAWS_DEG]
    tiles = [center_square(photo), model_input, edited, *[views[i] for i in picks], depth_to_gray(depth)]
    size = (OVERVIEW_TILE, OVERVIEW_TILE)
    resized = [torch.nn.functional.interpolate(t[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0] for t in tiles]
    return Image.fromarray(to_uint8(torch.cat(resized, dim=-1)))


def edit_one(pipe: EditPipeline, photo: str | Path, out: str | Path, settings: EditSettings, batch: bool = False) -> dict[str, Path]:
    """Edit one photo file with a ready pipeline; returns the written files by kind."""
    photo, out = Path(photo), Path(out)
    original = load_image(photo)
    size = max(ALIGNED_SIZE, pipe.editor.cfg.prior.encoder.image_size)  # never upsample a crop for the model
    image, camera, facts = prepare_input(original, settings, str(photo), framing=pipe.framing, size=size)
    refine = RefineConfig(steps=settings.refine_steps, strength=settings.refine_strength, progress=True) \
        if settings.refine_steps else None
    result = pipe(image, prompt=settings.prompt, prompt_image=settings.reference, strength=settings.strength,
                  cameras=turntable_cameras(settings.views), input_camera=camera, resolution=settings.resolution, refine=refine)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "input": _save_png(out / "input.png", image),
        "edited": _save_png(out / "edited.png", result.image[0]),
        "depth": _save_png(out / "depth.png", depth_to_gray(result.depth[0])),
        "turntable": write_turntable_gif(image, result.views[0], result.depths[0], out / "turntable.gif"),
        "video": write_turntable_mp4(image, result.views[0], result.depths[0], out / "turntable.mp4"),
    }
    files["depth_views"] = write_depth_pngs(result.depths[0], out / "depth")[0].parent
    sheet = overview_image(original, image, result.image[0], result.views[0], result.cameras, result.depth[0])
    files["overview"] = atomic_write(out / "overview.png", lambda tmp: sheet.save(tmp, format="PNG", optimize=True))
    if facts:
        files["portrait"] = atomic_write_text(out / "portrait.json", json.dumps({"photo": str(photo), **facts}, indent=2) + "\n")
    if settings.mesh is not None:
        from pe3d.mesh import write_ply

        files["mesh"] = write_ply(mesh_path(settings.mesh, out, batch), pipe.mesh(result.triplane[0], resolution=settings.mesh_resolution))
    return files


def _load_settings(pipe: EditPipeline, style, prompt, prompt_image, **options) -> EditSettings:
    if sum(x is not None for x in (style, prompt, prompt_image)) == 0:
        raise InvalidInput("give --style NAME, --prompt TEXT or --prompt-image FILE")
    if style is not None:
        text, style_reference = resolve_style_prompts(pipe, style)
        prompt = prompt or text
        prompt_image = prompt_image if prompt_image is not None else style_reference
        if prompt is None and prompt_image is None:
            raise _style_needs_reference(style)
    pipe.check_prompt(prompt)
    if options.get("refine_steps") is None:
        options["refine_steps"] = default_refine_steps(pipe)
    if options.get("refine_strength") is None:
        options["refine_strength"] = style_refine_strength(style)
    reference = center_square(load_image(prompt_image)) if prompt_image is not None else None
    settings = EditSettings(prompt=prompt, reference=reference, **options)
    if settings.views < 1:
        raise InvalidInput(f"--views must be at least 1, got {settings.views}")
    if not 0.0 <= settings.strength <= 1.0:
        raise InvalidInput(f"--strength must be in [0, 1], got {settings.strength}")
    if settings.refine_steps < 0:
        raise InvalidInput(f"--refine-steps must be >= 0, got {settings.refine_steps}")
    if not 0.0 <= settings.refine_strength <= MAX_STRENGTH:
        raise InvalidInput(f"--refine-strength must be in [0, {MAX_STRENGTH:g}], got {settings.refine_strength}")
    if settings.mesh is not None:
        mesh_path(settings.mesh, Path("."), batch=False)  # validates the name
    return settings


def edit_photo(
    photo: str | Path,
    out: str | Path,
    style: str | None = None,
    prompt: str | None = None,
    prompt_image: str | Path | None = None,
    views: int = 24,
    strength: float = 1.0,
    weights: str | None = None,
    resolution: int = 64,
    face: str | int | None = None,
    align: bool = True,
    mesh: str | None = None,
    refine_steps: int | None = None,
    refine_strength: float | None = None,
) -> dict[str, Path]:
    """Edit one photo (see the module docstring); returns the written files by kind. ``refine_steps=None``:
    :func:`default_refine_steps` (200 steps of test-time refinement with the shipped editor);
    ``refine_strength=None``: the style's (:func:`style_refine_strength`)."""
    pipe = EditPipeline.from_pretrained(weights)
    settings = _load_settings(pipe, style, prompt, prompt_image, views=views, strength=strength, resolution=resolution,
                              face=face, align=align, mesh=mesh, refine_steps=refine_steps, refine_strength=refine_strength)
    return edit_one(pipe, photo, out, settings)


@dataclass
class BatchReport:
    """Outcome of :func:`edit_folder`: the photos done (with their folders) and those that failed (with the message)."""

    done: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line per failure plus a count line."""
        lines = [f"failed: {path}: {message}" for path, message in self.failed]
        lines.append(f"edited {len(self.done)} of {len(self.done) + len(self.failed)} photos ({len(self.failed)} failed)")
        return "\n".join(lines)


def list_photos(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix), sorted; an error when there are none."""
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise InvalidInput(f"{folder}: no image files ({', '.join(PHOTO_SUFFIXES)}) in this folder")
    return photos


def edit_folder(folder: str | Path, out: str | Path, weights: str | None = None, style: str | None = None,
                prompt: str | None = None, prompt_image: str | Path | None = None, progress: bool = True, **options) -> BatchReport:
    """Edit every photo in ``folder`` into ``out/<photo stem>/``; a failing photo is reported and skipped.

    ``options`` are those of :func:`edit_photo` (views, strength, resolution, face, align, mesh, refine_steps,
    refine_strength).
    """
    from tqdm import tqdm

    folder, out = Path(folder), Path(out)
    photos = list_photos(folder)
    pipe = EditPipeline.from_pretrained(weights)
    settings = _load_settings(pipe, style, prompt, prompt_image, **options)
    report = BatchReport()
    names = _unique_stems(photos)
    bar = tqdm(photos, desc="pe3d edit", unit="photo", disable=not progress)
    for photo in bar:
        bar.set_postfix_str(photo.name)
        try:
            edit_one(pipe, photo, out / names[photo], settings, batch=True)
        except (ValueError, OSError, ImageLoadError) as error:
            report.failed.append((photo, str(error)))
            bar.write(f"skipped {photo}: {error}")
            continue
        report.done.append((photo, out / names[photo]))
    return report


def _unique_stems(photos: list[Path]) -> dict[Path, str]:
    """Output folder name per photo: its stem, with the suffix added when two photos share a stem."""
    stems = [p.stem for p in photos]
    return {p: (p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}") for p in photos}


__all__ = ["BatchReport", "EditSettings", "edit_folder", "edit_one", "edit_photo", "list_photos", "mesh_path", "resolve_style_prompt",
           "resolve_style_prompts", "style_refine_strength"]
