"""What the web interface does, without the interface: edit an uploaded portrait.

:class:`EditService` is called by the gradio handlers (:mod:`pe3d.web.app`) and directly by
tests. Every user mistake raises :class:`~pe3d.web.limits.UploadRejected` with the message
the page shows.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from torch import Tensor

from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import center_square
from pe3d.pipeline import EditPipeline
from pe3d.prompt_vocabulary import prompt_reading_note, unseen_words_note
from pe3d.refinement import RefineConfig
from pe3d.turntable import depth_to_gray, to_uint8
from pe3d.web.limits import UploadRejected, check_prompt, display_name, load_uploaded_image
from pe3d.web.settings import WebSettings

NO_STYLE = "(none)"
"""Style dropdown entry meaning: the base editor with the typed / image prompt only."""


@dataclass
class PreparedInput:
    """The model input of an upload: a square ``image [3, S, S]``, ``camera [25]`` and a note for the user."""

    image: Tensor
    camera: Tensor
    note: str


@dataclass
class EditOutput:
    """Images for the page (``[H, W, 3]`` uint8): the edit at the portrait's own camera, the
    chosen yaw/pitch view and its depth, and the gallery of novel views with captions. ``note``
    says which adapter edited it (or the base editor) and what was found in the portrait."""

    edited: np.ndarray
    view: np.ndarray
    depth: np.ndarray
    gallery: list[tuple[np.ndarray, str]]
    note: str


def prepare_upload(image: Tensor, size: int, name: str, framing: str = "world", align: bool = True) -> PreparedInput:
    """Face-align ``image`` (``framing``: the crop the model expects, :attr:`EditPipeline.framing`) and
    estimate its camera; without a detectable face, the centre square and the frontal camera (said in the note).
    ``align=False`` takes the image as already framed (a world render, as ``pe3d edit --no-align``): the
    centre square and the frontal camera, no face detection."""
    from pe3d.faces import FaceSelectionError, prepare_portrait

    if not align:
        return PreparedInput(center_square(image), label_from_yaw_pitch(0.0, 0.0)[0], "taken as framed: centre square, frontal camera")
    try:
        prepared = prepare_portrait(image, size, face="largest", source=name, framing=framing)
        note = f"face found: yaw {prepared.yaw_deg:+.0f}°, pitch {prepared.pitch_deg:+.0f}°"
        return PreparedInput(prepared.image, prepared.camera.reshape(25).float(), note)
    except FaceSelectionError:  # the pipeline resizes the centre square to its input size
        return PreparedInput(center_square(image), label_from_yaw_pitch(0.0, 0.0)[0], "no face detected: centre crop, frontal camera")


class EditService:
    """One lazily built :class:`EditPipeline` shared by all requests (serialised by a re-entrant lock,
    since switching adapters changes the shared model)."""

    def __init__(self, settings: WebSettings, pipe_factory: Optional[Callable[[], EditPipeline]] = None) -> None:
        self.settings = settings
        self._factory = pipe_factory or (lambda: EditPipeline.from_pretrained(settings.weights or None))
        self._pipe: Optional[EditPipeline] = None
        self._lock = threading.RLock()

    @property
    def pipe(self) -> EditPipeline:
        """The pipeline (built on first use)."""
        with self._lock:
            if self._pipe is None:
                self._pipe = self._factory()
            return self._pipe

    @staticmethod
    def style_choices() -> list[str]:
        """The style dropdown: :data:`NO_STYLE` then every discovered style."""
        from pe3d.styles.discovery import list_styles

        return [NO_STYLE, *list_styles()]

    def check_portrait(self, path: Optional[str], align: bool = True) -> tuple[np.ndarray, str]:
        """Validate an uploaded portrait; its model input as a preview image and a note (``align``: see
        :func:`prepare_upload`)."""
        if not path:
            raise UploadRejected("upload a portrait image first")
        prepared = prepare_upload(load_uploaded_image(path, self.settings.limits), self.input_size(), display_name(path),
                                  framing=self.pipe.framing, align=align)
        return to_uint8(prepared.image), prepared.note

    def refine_steps(self, refine: Optional[bool] = None) -> int:
        """Test-time refinement steps of an edit (:mod:`pe3d.refinement`): the server's ``refine_steps`` when the
        page's switch is not given (``None``), else, ticked, those steps or ``pe3d edit``'s default for a photo
        (:data:`~pe3d.recipes.edit.PHOTO_REFINE_STEPS`), and 0 unticked."""
        from pe3d.recipes.edit import PHOTO_REFINE_STEPS

        if refine is None:
            return self.settings.refine_steps
        return (self.settings.refine_steps or PHOTO_REFINE_STEPS) if refine else 0

    def input_size(self) -> int:
        """Side of the model's input images."""
        return self.pipe.editor.cfg.prior.encoder.image_size

    def _activate(self, style: Optional[str], prompt: str) -> tuple[Optional[str], Optional[Tensor]]:
        """Switch the pipeline to ``style``'s adapter (or the base editor); returns the text prompt and the
        style's reference image (``None`` unless the style names one)."""
        from pe3d.recipes.edit import resolve_style_prompts

        self.pipe.unload_adapter()
        if style and style != NO_STYLE:
            text, reference = resolve_style_prompts(self.pipe, style)
            image = center_square(load_uploaded_image(str(reference), self.settings.limits)) if reference else None
            return prompt or text, image
        return prompt or None, None

    def edit(
        self,
        portrait: Optional[str],
        style: Optional[str] = None,
        prompt: str = "",
        reference: Optional[str] = None,
        strength: float = 1.0,
        yaw_deg: float = 0.0,
        pitch_deg: float = 0.0,
        align: bool = True,
        refine: Optional[bool] = None,
    ) -> EditOutput:
        """Edit the uploaded ``portrait`` file; see :class:`EditOutput` (``align``: see :func:`prepare_upload`;
        ``refine``: the page's "refine to the photo" switch, :meth:`refine_steps`)."""
        from pe3d.recipes.edit import style_refine_strength

        if not portrait:
            raise UploadRejected("upload a portrait image first")
        limits = self.settings.limits
        image = load_uploaded_image(portrait, limits)
        reference_image = center_square(load_uploaded_image(reference, limits)) if reference else None
        prompt = check_prompt(prompt or "", limits)
        if not (style and style != NO_STYLE) and not prompt and reference_image is None:
            raise UploadRejected("choose a style, type a prompt or upload a reference image")
        if not 0.0 <= strength <= 1.0:
            raise UploadRejected(f"strength must be in [0, 1], got {strength}")
        prepared = prepare_upload(image, self.input_size(), display_name(portrait), framing=self.pipe.framing, align=align)
        yaws = [yaw_deg, *self.settings.view_yaws_deg]
        pitches = [pitch_deg] + [0.0] * len(self.settings.view_yaws_deg)
        cameras = label_from_yaw_pitch([math.radians(y) for y in yaws], [math.radians(p) for p in pitches])
        with self._lock:
            text, style_reference = self._activate(style, prompt)
            reference_image = reference_image if reference_image is not None else style_reference
            if text is None and reference_image is None:
                raise UploadRejected(f"style {style!r}: this model reads reference images only (no text encoder); "
                                     "upload a reference image")
            steps = self.refine_steps(refine)
            detail = style_refine_strength(style if style != NO_STYLE else None)
            result = self.pipe(prepared.image, prompt=text, prompt_image=reference_image, strength=strength,
                               cameras=cameras, input_camera=prepared.camera, resolution=self.settings.resolution,
                               refine=RefineConfig(steps=steps, prior=self.settings.prior, strength=detail) if steps else None)
            adapter = self.pipe.active_adapter
            if text and self.pipe.returns_unedited(text, reference_image):
                read_as, unseen = "the prompt names no style of this editor: the portrait is returned unedited", ""
            else:
                words = self.pipe.unseen_prompt_words(text) if text else []
                unseen = unseen_words_note(words, self.pipe.unseen_word_readings(words),
                                           self.pipe.lexical_reading(text) if text else None)
                read_as = prompt_reading_note(text, self.pipe.editor.read_prompt(text)) if text else ""
        views = result.views[0]
        gallery = [(to_uint8(views[i + 1]), f"yaw {yaw:+.0f}°") for i, yaw in enumerate(self.settings.view_yaws_deg)]
        return EditOutput(
            edited=to_uint8(result.image[0]),
            view=to_uint8(views[0]),
            depth=to_uint8(depth_to_gray(result.depths[0, 0])),
            gallery=gallery,
            note="; ".join(filter(None, [f"adapter {adapter}" if adapter else "base editor", _refined_note(steps, detail),
                                         read_as, unseen, prepared.note])),
        )


def _refined_note(steps: int, strength: float) -> str:
    """The status line's words for the refinement: none without it, the style's strength when it is not 1."""
    if not steps:
        return ""
    return f"refined to the photo in {steps} steps" + (f" (the style's strength {strength:g})" if strength != 1.0 else "")
