"""Inference without Lightning: ``EditPipeline`` turns a portrait + prompt into an edited 3D triplane.

    pipe = EditPipeline.from_pretrained()            # the shipped mini base editor
    pipe.load_adapter("styles/golden_statue")        # several adapters may be loaded ...
    pipe.set_adapter("golden_statue")                # ... and switched without reloading the base
    out = pipe(image, prompt="make it a golden statue", strength=0.8)
    out.image, out.views, out.depths                 # edit at the input camera, novel views, depth
    mesh = pipe.mesh(out.triplane[0])                # marching cubes on the edited density (pe3d.mesh)

Adapters hold only the tensors norm-only adaptation trains; the pipeline keeps a copy of
the base editor's values of those tensors, so switching or unloading restores them exactly.
An adapter made for another base model is refused with both hashes in the message.

``pipe.save_pretrained(folder)`` writes the base editor, every loaded adapter and which one is
active; ``EditPipeline.from_pretrained(folder)`` restores exactly that state.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pe3d.geometry import label_from_yaw_pitch
from pe3d.mesh import DEFAULT_GRID, DEFAULT_LEVEL, Mesh, triplane_mesh
from pe3d.models.checkpoints import model_hash
import pe3d
from pe3d.adapters import (ADAPTER_FILE, Adapter, adapter_parameter_names, apply_adapter, check_adapter,
                           optional_adapter_parameters, read_adapter)
from pe3d.devices import inference_memory_layout
from pe3d.errors import InvalidInput
from pe3d.images import resize_images
from pe3d.io import atomic_write_text, save_tensors
from pe3d.models.editor import EditorCore, Prompts, input_framing, load_editor, recorded_styles, save_editor
from pe3d.refinement import RefineConfig, ResidualRegion, fit_detail_residual, residual_region
from pe3d.prompt_vocabulary import (
    PromptVocabulary,
    compound_reading,
    nearest_known_words,
    training_vocabulary,
    unseen_words,
    warn_no_style_named,
    warn_prompt_reading,
    warn_unseen_words,
)

if TYPE_CHECKING:
    from pe3d.models.prior import PriorModel

__all__ = ["DEFAULT_VIEW_YAWS_DEG", "EDITOR_FILE", "EditPipeline", "EditResult", "PIPELINE_FILE", "as_image_batch"]

DEFAULT_VIEW_YAWS_DEG = (-30.0, 0.0, 30.0)
"""Yaw angles (degrees) of the novel views rendered when no cameras are given."""
EDITOR_FILE = "editor.safetensors"
"""The base editor inside a run or ``save_pretrained`` folder."""
PIPELINE_FILE = "pipeline.json"
"""``save_pretrained``'s record of the loaded adapters (``adapters/<name>.safetensors``) and the active one."""
ADAPTERS_DIR = "adapters"
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class EditResult:
    """Output of :meth:`EditPipeline.__call__` (batch ``B``, ``N`` novel cameras, render side ``R``).

    With a super-resolution renderer (imported 3DPE/Live3D models) the images are the super-resolved
    ones and ``R`` is their side; the depths are the volume-rendered ones resized to it, blended
    towards the far bound where the ray is only partly opaque (no spikes at silhouettes).

    Attributes:
        triplane: ``[B, 3, C, Rt, Rt]`` the edited (strength-blended) triplane.
        image: ``[B, 3, R, R]`` render at the input camera.
        depth: ``[B, 1, R, R]`` depth at the input camera.
        views: ``[B, N, 3, R, R]`` renders at the novel cameras.
        depths: ``[B, N, 1, R, R]`` their depth maps.
        cameras: ``[N, 25]`` the novel cameras.
    """

    triplane: Tensor
    image: Tensor
    depth: Tensor
    views: Tensor
    depths: Tensor
    cameras: Tensor


def as_image_batch(image: Tensor, name: str) -> Tensor:
    """``[3,H,W]`` or ``[B,3,H,W]`` finite RGB -> float ``[B,3,H,W]`` clamped to [0, 1]; clear errors otherwise."""
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[1] != 3:
        raise InvalidInput(f"{name} must be [3, H, W] or [B, 3, H, W] RGB, got shape {list(image.shape)}")
    image = image.float()
    if not torch.isfinite(image).all():
        raise InvalidInput(f"{name} contains NaN or inf values")
    return image.clamp(0, 1)


NO_TEXT_ENCODER = ("this model has no text encoder (it edits from reference images only, like the imported 3DPE "
                   "release): give a prompt image (--prompt-image FILE) instead of a text prompt")
"""Message for a text prompt given to an image-reference-only editor."""


def _picture(render) -> Tensor:
    """The image a render shows: the super-resolved one when the renderer has a super-resolution head
    (the EG3D renderer of imported models), else the volume-rendered RGB."""
    return render.image_sr if render.image_sr is not None else render.image


def _resize_depth(depth: Tensor, side: int) -> Tensor:
    """Depth ``[B, 1, r, r]`` at the side of the shown image (bilinear when a super-resolution head made it larger)."""
    if depth.shape[-1] == side:
        return depth
    return F.interpolate(depth, size=(side, side), mode="bilinear", align_corners=False)


def _far_bound(renderer) -> float:
    """The far end of the rays of pe3d's renderer (``ray_march``) or the EG3D one (``rendering``)."""
    config = renderer.config
    march = config.ray_march if hasattr(config, "ray_march") else config.rendering
    return float(march.ray_end)


def _shown_depth(render, far: float) -> Tensor:
    """The depth map shown to users ``[B, 1, r, r]``: the volume's expected depth blended towards the far
    bound where the ray is only partly opaque, so silhouettes fade into the background instead of
    spiking (the raw depth is normalised by the opacity, which is tiny there)."""
    opacity = render.weights.clamp(0, 1)
    return render.depth * opacity + far * (1 - opacity)


def _file_stamp(path: Path) -> Optional[tuple[int, int, int]]:
    """``(inode, mtime_ns, size)`` of ``path``, or ``None`` when it cannot be read (the loader then reports why)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class EditPipeline:
    """A base editor plus any number of loaded style adapters (one active at a time)."""

    def __init__(self, editor: EditorCore, device: str | torch.device = "cpu", trained_styles: Sequence[str] = ()) -> None:
        """``trained_styles``: the styles the editor was distilled on (its file's ``styles`` record;
        :meth:`from_pretrained` reads it), for :meth:`unseen_prompt_words`."""
        self.editor = inference_memory_layout(editor.to(device).eval())
        self.trained_styles = list(trained_styles)
        self._vocabularies: dict[tuple[str, ...], Optional[PromptVocabulary]] = {}
        self.unedited_without_style = True
        """Return the unedited reconstruction for a text prompt that names no style (:meth:`names_no_style`);
        ``False`` gives such prompts to the editor like any other (what it makes of them is measured in
        docs/results/quality/no_style_prompts.md)."""
        self.device = torch.device(device)
        self.base_hash = model_hash(self.editor)
        names = adapter_parameter_names(self.editor, [*self.editor.adaptation_parameters(),
                                                      *optional_adapter_parameters(self.editor)])
        params = dict(self.editor.named_parameters())
        self._base_values = {name: params[name].detach().clone() for name in names}
        self.adapters: dict[str, Adapter] = {}
        self.active_adapter: Optional[str] = None
        self._priors: dict[Path, "PriorModel"] = {}
        """Priors loaded for :meth:`detail_residual`, by resolved path."""
        self._strength_prior: "PriorModel | bool | None" = None
        """The prior :meth:`unedited_triplane` uses; ``False`` when it cannot be used, ``None`` before the first call."""
        self._adapter_files: dict[Path, tuple[tuple[int, int, int], str]] = {}
        """Adapter files already read: resolved path -> ((inode, mtime_ns, size), the name it was loaded under)."""

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> "EditPipeline":
        """Load a base editor file, or a folder holding ``editor.safetensors`` (a run folder or a
        :meth:`save_pretrained` folder, whose adapters and active adapter come back too);
        ``None`` = the shipped mini editor."""
        if path is None:
            from pe3d.weights import shipped_path

            path = shipped_path("editor_mini")
        folder = Path(path)
        if not folder.is_dir():
            return cls(load_editor(folder), device, recorded_styles(folder))
        pipe = cls(load_editor(folder / EDITOR_FILE), device, recorded_styles(folder / EDITOR_FILE))
        record = folder / PIPELINE_FILE
        if record.is_file():
            try:
                state = json.loads(record.read_text(encoding="utf-8"))
                names, active = list(state["adapters"]), state["active_adapter"]
            except (ValueError, KeyError, TypeError) as error:
                raise InvalidInput(f"{record}: not a pe3d pipeline record ({type(error).__name__}: {error})") from None
            for name in names:
                pipe.load_adapter(folder / ADAPTERS_DIR / f"{_adapter_file_name(name)}.safetensors", name=name)
            if active is not None:
                pipe.set_adapter(active)
        return pipe

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``editor.safetensors`` (the base weights, float32, whatever adapter is active),
        ``adapters/<name>.safetensors`` for every loaded adapter and ``pipeline.json``; returns ``folder``.

        :meth:`from_pretrained` on the folder gives a pipeline with the same base hash, the same
        adapters and the same active adapter.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        active = self.active_adapter
        self._restore_base()
        try:
            save_editor(self.editor, folder / EDITOR_FILE, {"base_hash": self.base_hash, "styles": ",".join(self.trained_styles)})
        finally:
            if active is not None:
                apply_adapter(self.editor, self.adapters[active])
        for name, adapter in self.adapters.items():
            tensors = {key: value.detach().cpu() for key, value in adapter.tensors.items()}
            save_tensors(folder / ADAPTERS_DIR / f"{_adapter_file_name(name)}.safetensors", tensors, adapter.metadata)
        state = {"adapters": list(self.adapters), "active_adapter": active, "pe3d_version": pe3d.__version__}
        atomic_write_text(folder / PIPELINE_FILE, json.dumps(state, indent=2) + "\n")
        return folder

    def load_adapter(self, source: str | Path, name: str | None = None) -> str:
        """Read and check an adapter (a style folder or an ``.safetensors`` file); returns its name.

        The adapter is not activated: call :meth:`set_adapter`. Loading a file again is free while
        it is unchanged on disk (same inode, modification time and size; adapters are written to a
        new file and renamed, so a rewritten one is always read again).
        """
        path = Path(source)
        if path.is_dir():
            path = path / ADAPTER_FILE
        key, stamp = path.resolve(), _file_stamp(path)
        known = self._adapter_files.get(key)
        if stamp is not None and known is not None and known[0] == stamp and known[1] in self.adapters:
            adapter = self.adapters[known[1]]
        else:
            adapter = read_adapter(path)
            check_adapter(adapter, self.editor, self.base_hash, str(path))
        name = name or adapter.style or path.stem
        self.adapters[name] = adapter
        if stamp is not None:
            self._adapter_files[key] = (stamp, name)
        return name

    def set_adapter(self, name: str) -> None:
        """Activate a loaded adapter (the base values are restored first)."""
        if name not in self.adapters:
            raise KeyError(f"adapter {name!r} is not loaded; loaded: {sorted(self.adapters)}")
        self._restore_base()
        apply_adapter(self.editor, self.adapters[name])
        self.active_adapter = name

    def unload_adapter(self) -> None:
        """Back to the base editor (loaded adapters stay available to :meth:`set_adapter`)."""
        self._restore_base()
        self.active_adapter = None

    def _restore_base(self) -> None:
        params = dict(self.editor.named_parameters())
        with torch.no_grad():
            for name, value in self._base_values.items():
                params[name].copy_(value)

    @property
    def framing(self) -> str:
        """How a photo must be cropped for this model (:func:`pe3d.faces.prepare_portrait`): ``"eg3d"`` (EG3D's
        FFHQ crop) for a model rendered by EG3D's renderer (the imported 3DPE / Live3D ones), else ``"world"``."""
        return input_framing(self.editor.cfg)

    def _prepare_image(self, image: Tensor) -> Tensor:
        image = as_image_batch(image, "image").to(self.device)
        return resize_images(image, self.editor.cfg.prior.encoder.image_size)

    @torch.no_grad()
    def __call__(
        self,
        image: Tensor,
        prompt: str | Sequence[str] | None = None,
        prompt_image: Tensor | None = None,
        cameras: Tensor | None = None,
        input_camera: Tensor | None = None,
        strength: float = 1.0,
        resolution: int | None = None,
        refine: RefineConfig | None = None,
    ) -> EditResult:
        """Edit ``image`` (``[3,H,W]`` or ``[B,3,H,W]`` in [0,1]) following a text and/or image prompt.

        Args:
            prompt: one text for the batch or one per item.
            prompt_image: reference image(s) ``[3,H,W]`` / ``[B,3,H,W]``.
            cameras: ``[N, 25]`` novel cameras (default: yaw -30, 0, +30 degrees).
            input_camera: ``[25]`` or ``[B, 25]`` camera of the input (default: frontal FFHQ camera).
            strength: 0 = the unedited reconstruction (:meth:`unedited_triplane`), 1 = the full edit
                (triplanes interpolated). A text prompt that names no style (:meth:`names_no_style`) gives the
                unedited reconstruction at any strength, with a warning.
            resolution: render side (default: the model's neural rendering resolution).
            refine: test-time detail refinement (:mod:`pe3d.refinement`): with ``refine.steps > 0`` the
                triplane residual that makes the prior's reconstruction of ``image`` render like it at
                ``input_camera`` (at ``resolution``), times ``refine.strength``, is added to the edit; not one pass
                any more (``steps`` renders with gradients).
        """
        edited = self.edit_triplane(image, prompt=prompt, prompt_image=prompt_image, strength=strength)
        batch = edited.shape[0]
        if input_camera is None:
            input_camera = label_from_yaw_pitch([0.0] * batch, [0.0] * batch)
        input_camera = input_camera.reshape(-1, 25).expand(batch, 25).to(self.device)
        if refine is not None and refine.steps > 0:
            edited = edited + refine.strength * self.detail_residual(image, input_camera, refine, resolution)
        if cameras is None:
            cameras = label_from_yaw_pitch([math.radians(y) for y in DEFAULT_VIEW_YAWS_DEG], [0.0] * len(DEFAULT_VIEW_YAWS_DEG))
        cameras = cameras.reshape(-1, 25).to(self.device)
        n = cameras.shape[0]
        front = self.render(edited, input_camera, resolution=resolution)
        novel = self.render(edited.repeat_interleave(n, 0), cameras.repeat(batch, 1), resolution=resolution)
        views = _picture(novel)
        side = views.shape[-1]
        far = _far_bound(self.editor.renderer)
        return EditResult(
            triplane=edited,
            image=_picture(front).clamp(0, 1),
            depth=_resize_depth(_shown_depth(front, far), side),
            views=views.clamp(0, 1).reshape(batch, n, 3, side, side),
            depths=_resize_depth(_shown_depth(novel, far), side).reshape(batch, n, 1, side, side),
            cameras=cameras,
        )

    @torch.no_grad()
    def edit_triplane(
        self,
        image: Tensor,
        prompt: str | Sequence[str] | None = None,
        prompt_image: Tensor | None = None,
        strength: float = 1.0,
    ) -> Tensor:
        """The edited triplane ``[B, 3, C, Rt, Rt]`` alone (no rendering); arguments as in :meth:`__call__`."""
        if not 0.0 <= strength <= 1.0:
            raise InvalidInput(f"strength must be in [0, 1], got {strength}")
        image = self._prepare_image(image)
        prompts = self._prompts(prompt, prompt_image, image.shape[0])
        unnamed = set()
        for text in dict.fromkeys(prompts.texts or ()):  # each distinct prompt once
            if text is not None and self.returns_unedited(text, prompts.images):
                unnamed.add(text)
                warn_no_style_named(text, self._styles())
            elif text is not None:
                unseen = self.unseen_prompt_words(text)
                warn_unseen_words(text, unseen, self.unseen_word_readings(unseen), self.lexical_reading(text))
                warn_prompt_reading(text, self.editor.read_prompt(text))
        edited = self.editor(image, prompts)
        items = [i for i, text in enumerate(prompts.texts or ()) if text in unnamed]
        if items:
            edited[items] = self.unedited_triplane(image[items])
        if strength < 1.0:
            edited = torch.lerp(self.unedited_triplane(image), edited, strength)
        return edited

    @torch.no_grad()
    def unedited_triplane(self, image: Tensor) -> Tensor:
        """What ``strength=0`` gives for a prepared ``image [B,3,S,S]``: the shipped prior's reconstruction
        when that prior shares the editor's renderer (the shipped editor; 24.5 dB at the input view of held-out
        world identities), else the editor's own prompt-free path (:meth:`EditorCore.reconstruct`, which
        distillation leaves 5 dB worse for the shipped editor: docs/results/quality/refinement.md)."""
        if not self.has_shipped_prior():
            return self.editor.reconstruct(image)
        return self._strength_prior(image)

    def has_shipped_prior(self) -> bool:
        """Whether the shipped mini prior shares this editor's renderer (the shipped editor and those
        distilled from it; not an imported one), so that :meth:`unedited_triplane` and the default refinement
        (:meth:`detail_residual`) can use it; loaded once."""
        if self._strength_prior is None:
            try:
                self._strength_prior = self.refinement_prior()
            except (InvalidInput, OSError):  # another renderer (an imported editor) or no shipped prior
                self._strength_prior = False
        return self._strength_prior is not False

    def detail_residual(self, image: Tensor, camera: Tensor, refine: RefineConfig, resolution: int | None = None,
                        initial: Tensor | None = None, region: ResidualRegion | None = None) -> Tensor:
        """The triplane residual that makes the prior's reconstruction of ``image`` render like ``image`` at
        ``camera`` ``[B, 25]`` (:func:`pe3d.refinement.fit_detail_residual`, at ``resolution``, default the
        renderer's default; started from ``initial``, default zeros; kept to the reconstruction's visual hull and
        out of its empty space as ``refine`` asks: ``region``, e.g. :meth:`residual_region` of an earlier video
        frame, or made from this reconstruction); the editor's weights are not changed."""
        target = as_image_batch(image, "image").to(self.device)
        reconstruction = self._refined_reconstruction(image, refine)
        side = resolution or self.editor.renderer.config.neural_rendering_resolution
        render = functools.partial(self.editor.render, images_only=True)  # the fit reads the images only
        masks, empty = region if region is not None else (None, None)
        return fit_detail_residual(render, reconstruction, target, camera.reshape(-1, 25).to(self.device), refine,
                                   frozen=self.editor, resolution=side, initial=initial, region=masks, empty=empty,
                                   renderer=self.editor.renderer)

    def residual_region(self, image: Tensor, refine: RefineConfig) -> ResidualRegion:
        """The visual hull's masks and the empty space (:func:`pe3d.refinement.residual_region`) of the prior's
        reconstruction of ``image``, as ``refine`` asks for them (``(None, None)`` when it asks for neither), for
        :meth:`detail_residual` to reuse (``pe3d edit-video`` makes them once, from the first frame)."""
        with torch.no_grad():
            return residual_region(self.editor.renderer, self._refined_reconstruction(image, refine), refine)

    def _refined_reconstruction(self, image: Tensor, refine: RefineConfig) -> Tensor:
        prior = self.refinement_prior(refine.prior)
        with torch.no_grad():
            return prior(self._prepare_image(image))

    def refinement_prior(self, weights: str = "") -> "PriorModel":
        """The prior whose reconstruction :meth:`detail_residual` refines (``""`` = the shipped mini prior),
        loaded once per file; :class:`~pe3d.errors.InvalidInput` naming the file when its renderer is not
        the editor's (the residual would mean something else to the editor)."""
        from pe3d.models.prior import load_prior
        from pe3d.weights import resolve_weights

        path = resolve_weights(weights, "prior_mini").resolve()
        if path not in self._priors:
            prior = inference_memory_layout(load_prior(path).to(self.device).eval())
            ours, theirs = self.editor.renderer.state_dict(), prior.renderer.state_dict()
            if ours.keys() != theirs.keys() or any(not torch.equal(ours[k], theirs[k].to(ours[k].dtype)) for k in ours):
                raise InvalidInput(f"{path}: this prior's renderer is not the editor's; refinement needs the prior the "
                                   "editor was distilled from (RefineConfig.prior)")
            self._priors[path] = prior
        return self._priors[path]

    @torch.no_grad()
    def render(self, triplane: Tensor, camera: Tensor, resolution: int | None = None):
        """Render triplanes ``[B, 3, C, Rt, Rt]`` at cameras ``[B, 25]``; a :class:`~pe3d.rendering.RenderOutput`
        (``image`` is not clamped; ``features`` holds only what the images need: RGB alone without a
        super-resolution head, see :meth:`~pe3d.rendering.TriplaneRenderer.forward`'s ``images_only``)."""
        return self.editor.render(triplane, camera.reshape(-1, 25).to(self.device), resolution=resolution,
                                  images_only=True)

    def check_prompt(self, prompt: str | Sequence[str] | None) -> None:
        """Raise :class:`~pe3d.errors.InvalidInput` now for a text prompt the encoder refuses (e.g. an
        empty one), before any image work."""
        if prompt is not None and self.editor.text_encoder is None:
            raise InvalidInput(NO_TEXT_ENCODER)
        if prompt is not None and self.editor.text_encoder is not None:
            try:
                self.editor.text_encoder.tokenize(prompt)
            except ValueError as error:
                raise InvalidInput(str(error)) from error

    def unseen_prompt_words(self, prompt: str) -> list[str]:
        """Words of the text ``prompt`` that this editor never saw in its training prompts (those of
        :attr:`trained_styles` and of the active adapter's style; :mod:`pe3d.prompt_vocabulary`), when
        its text encoder has no pretrained weights and so no language beyond them. Empty when the
        encoder is pretrained, there is no text encoder, or the training styles are not known. A word read
        through a known word it begins with (:func:`~pe3d.prompt_vocabulary.compound_reading`: "sketchbook"
        as "sketch book") is not reported."""
        encoder = self.editor.text_encoder
        if encoder is None or encoder.cfg.pretrained or not self.trained_styles:
            return []
        vocabulary = self._vocabulary()
        if vocabulary is None:
            return []
        known = vocabulary.words
        return [word for word in unseen_words(prompt, known) if compound_reading(word, known) is None]

    def _styles(self) -> tuple[str, ...]:
        """:attr:`trained_styles` and the active adapter's style: the styles whose prompts this editor knows."""
        adapter = self.adapters[self.active_adapter].style if self.active_adapter is not None else None
        return (*self.trained_styles, *([adapter] if adapter else []))

    def _vocabulary(self) -> PromptVocabulary | None:
        """The :class:`~pe3d.prompt_vocabulary.PromptVocabulary` of :attr:`trained_styles` and the active adapter's
        style (``None`` when a style cannot be read); style files are read once per set of styles."""
        styles = self._styles()
        if styles not in self._vocabularies:
            self._vocabularies[styles] = training_vocabulary(styles)
        return self._vocabularies[styles]

    def unseen_word_readings(self, words: Sequence[str]) -> dict[str, str]:
        """For unseen ``words`` (:meth:`unseen_prompt_words`): the training word each is read as, when the
        text encoder has WordNet token vectors (``prompt_encoder.text.token_vectors``); see
        :func:`~pe3d.prompt_vocabulary.nearest_known_words`."""
        vocabulary = self._vocabulary() if self.trained_styles else None
        if not words or vocabulary is None:
            return {}
        return nearest_known_words(self.editor.text_encoder, words, vocabulary.words)

    def names_no_style(self, prompt: str) -> bool:
        """Whether this editor takes the text ``prompt`` as naming none of its styles, and so returns the portrait
        unedited (:meth:`edit_triplane`): its text encoder has no pretrained language, and the prompt, as the editor
        reads it, holds no word that tells one of :attr:`trained_styles` or the active adapter's style from the
        others (:meth:`~pe3d.prompt_vocabulary.PromptVocabulary.names_no_style`: "make the person smile"). Such a
        prompt tells the editor nothing, and what it made of one was the edit most training pairs hold (zombie).
        ``False`` with :attr:`unedited_without_style` off."""
        vocabulary = self._vocabulary() if self.trained_styles and self.unedited_without_style else None
        encoder = self.editor.text_encoder
        if vocabulary is None or encoder is None or encoder.cfg.pretrained:
            return False
        return vocabulary.names_no_style(prompt)

    def returns_unedited(self, prompt: str, prompt_image: Tensor | None = None) -> bool:
        """Whether :meth:`edit_triplane` returns the portrait unedited for the text ``prompt``: it names no style
        (:meth:`names_no_style`) and no reference image ``prompt_image`` comes with it."""
        return prompt_image is None and self.names_no_style(prompt)

    def lexical_reading(self, prompt: str) -> tuple[str, str] | None:
        """``(unseen word, style-name word)`` when this editor reads a text ``prompt`` that names no style through
        WordNet ("make the person look like a ghoul": ``("ghoul", "zombie")``;
        :meth:`~pe3d.prompt_vocabulary.PromptVocabulary.lexical_reading`); ``None`` when it does not (the prompt
        names a style, no unseen word is near a style's name, or the editor reads prompts as written)."""
        vocabulary = self._vocabulary() if self.trained_styles else None
        encoder = self.editor.text_encoder
        if vocabulary is None or encoder is None or encoder.cfg.pretrained:
            return None
        return vocabulary.lexical_reading(prompt)

    def mesh(self, triplane: Tensor, resolution: int = DEFAULT_GRID, level: float = DEFAULT_LEVEL) -> Mesh:
        """Marching-cubes :class:`~pe3d.mesh.Mesh` of one triplane ``[3, C, H, W]`` / ``[1, 3, C, H, W]``
        (e.g. ``result.triplane[0]``), with vertex colours; see :mod:`pe3d.mesh`."""
        return triplane_mesh(self.editor.renderer, triplane.to(self.device), resolution, level)

    def _prompts(self, prompt, prompt_image, batch: int) -> Prompts:
        texts = None
        if prompt is not None and self.editor.text_encoder is None:
            raise InvalidInput(NO_TEXT_ENCODER)
        if prompt is not None:
            texts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
            if len(texts) != batch:
                raise InvalidInput(f"got {len(texts)} prompts for {batch} images")
            if not self.editor.text_encoder.cfg.pretrained and self.trained_styles:
                # the words the editor reads compounds against: its styles' and the active adapter's
                self.editor.prompt_vocabulary = self._vocabulary()
        images = None
        if prompt_image is not None:
            images = as_image_batch(prompt_image, "prompt_image").to(self.device).expand(batch, -1, -1, -1)
        if texts is None and images is None:
            raise InvalidInput("give a text prompt, a prompt image, or both")
        return Prompts(texts=texts, images=images)


def _adapter_file_name(name: str) -> str:
    """``name`` when it is safe as a file name inside ``adapters/``; :class:`InvalidInput` otherwise."""
    if not isinstance(name, str) or not _ADAPTER_NAME.match(name):
        raise InvalidInput(f"adapter name {name!r}: use letters, digits, '_', '-' and '.' (it names a file)")
    return name
