"""The gradio page of ``pe3d serve`` (paper Fig. 8): an edit tab and an adapt tab.

Edit: upload a portrait, pick a style and/or type a prompt and/or upload a reference image,
set the strength and a yaw/pitch, and get the edited portrait, the chosen novel view with
its depth, and a gallery of views. Adapt: upload about 10 before/after pairs, name the new
style, train with a progress bar; the style then appears in the edit tab's list.

Only layout and wiring live here; the work is in :mod:`pe3d.web.service` and
:mod:`pe3d.web.adapt`. Every refusal (:class:`~pe3d.web.limits.UploadRejected`, or any other
one-line error of the library) is shown in the page's status box, never as a traceback.
"""

from __future__ import annotations

import html
from typing import Callable, Optional

import gradio as gr

from pe3d.pipeline import EditPipeline
from pe3d.styles.spec import AdaptSpec
from pe3d.web.adapt import AdaptRequest, AdaptService
from pe3d.web.service import NO_STYLE, EditService
from pe3d.web.settings import WebSettings

USER_ERRORS = (ValueError, KeyError, OSError)
"""Exceptions whose one-line message is shown to the user (ConfigError, ImageLoadError, ... are ValueErrors)."""
CSS = """
.pe3d-error { color: #b00020; font-weight: 600; padding: 6px 0; }
.pe3d-ok { color: #1b5e20; padding: 6px 0; }
.pe3d-out img { width: 100% !important; height: 100% !important; object-fit: contain; }
"""


def status_html(message: str, ok: bool = False) -> str:
    """The status box: ``message`` escaped, styled as an error unless ``ok``."""
    kind = "pe3d-ok" if ok else "pe3d-error"
    prefix = "" if ok else "⚠ "
    return f'<div class="{kind}">{prefix}{html.escape(message, quote=False)}</div>'


def _message(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return text.splitlines()[0] if text else type(error).__name__


class PageHandlers:
    """The functions the page's events call: user errors become status messages, results become images."""

    def __init__(self, editing: EditService, adapting: AdaptService) -> None:
        self.editing = editing
        self.adapting = adapting

    def check_portrait(self, path: Optional[str], align: bool = True):
        """On upload (or when the face-alignment box changes): the model-input preview and a note, or the refusal."""
        if not path:
            return None, ""
        try:
            preview, note = self.editing.check_portrait(path, bool(align))
            return preview, status_html(note, ok=True)
        except USER_ERRORS as error:
            return None, status_html(_message(error))

    def run_edit(self, portrait, style, prompt, reference, strength, yaw, pitch, align=True, refine=None):
        """The Edit button: status, edited image, novel view, depth, gallery (outputs kept on refusal)."""
        try:
            out = self.editing.edit(portrait, style, prompt or "", reference, float(strength), float(yaw), float(pitch),
                                    align=bool(align), refine=None if refine is None else bool(refine))
        except USER_ERRORS as error:
            return status_html(_message(error)), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return status_html(f"edited ({out.note})", ok=True), out.edited, out.view, out.depth, out.gallery

    def run_adapt(self, name, prompt, before, after, steps, progress=gr.Progress()):
        """The Adapt button: trains with a progress bar; on success the new style is selected in the Edit tab."""
        request = AdaptRequest(name=(name or "").strip(), prompt=prompt or "", before=before or [], after=after or [],
                               steps=int(steps))
        progress(0.0, desc="preparing pairs")
        try:
            path = self.adapting.adapt(request, lambda done, total: progress((done, total), desc="adapting", unit="steps"))
        except USER_ERRORS as error:
            return status_html(_message(error)), gr.skip()
        message = f"style {request.name!r} is ready: pick it in the Edit tab (adapter: {path.name})"
        return status_html(message, ok=True), gr.Dropdown(choices=self.editing.style_choices(), value=request.name)


def build_app(pipe_factory: Optional[Callable[[], EditPipeline]] = None, settings: Optional[WebSettings] = None) -> gr.Blocks:
    """The gradio ``Blocks`` (not launched). ``pipe_factory`` builds the pipeline on first use
    (default: ``EditPipeline.from_pretrained(settings.weights)``)."""
    settings = settings or WebSettings()
    editing = EditService(settings, pipe_factory)
    handlers = PageHandlers(editing, AdaptService(settings, editing.input_size))

    # uploads and outputs older than an hour are deleted from gradio's cache, checked hourly
    with gr.Blocks(title="pe3d: 3D-aware portrait editing", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("## pe3d — 3D-aware portrait editing from a single image")
        with gr.Tab("Edit"):
            with gr.Row():
                with gr.Column(scale=1):
                    with gr.Row():
                        portrait = gr.File(label="Portrait (PNG, JPEG, WebP)", file_count="single", type="filepath",
                                           height=150, elem_id="portrait")
                        preview = gr.Image(label="Model input", type="numpy", interactive=False, height=150,
                                           elem_id="preview", elem_classes="pe3d-out")
                    align = gr.Checkbox(value=True, label="Align the face (untick for a world render: taken as framed, "
                                        "frontal camera)", elem_id="align")
                    refine = gr.Checkbox(value=settings.refine_steps > 0, elem_id="refine",
                                         label=f"Refine the detail to the photo ({editing.refine_steps(True)} steps, about "
                                               "8 s on a CPU: the face's eyes and mouth come back; unticked: the one-pass edit)")
                    style = gr.Dropdown(choices=editing.style_choices(), value=NO_STYLE, label="Style", elem_id="style")
                    prompt = gr.Textbox(label="Text prompt (optional with a style)", max_lines=2, elem_id="prompt")
                    reference = gr.File(label="Reference image prompt (optional)", file_count="single", type="filepath",
                                        height=110, elem_id="reference")
                    strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength", elem_id="strength")
                    with gr.Row():
                        yaw = gr.Slider(-45, 45, value=20, step=1, label="Novel view yaw (°)", elem_id="yaw")
                        pitch = gr.Slider(-20, 20, value=0, step=1, label="Novel view pitch (°)", elem_id="pitch")
                    run = gr.Button("Edit", variant="primary", elem_id="edit-button")
                    status = gr.HTML(elem_id="edit-status", min_height=40)
                with gr.Column(scale=1):
                    edited = gr.Image(label="Edited portrait", format="png", interactive=False, height=280,
                                      elem_id="edited", elem_classes="pe3d-out")
                    with gr.Row():
                        view = gr.Image(label="Novel view (yaw/pitch)", format="png", interactive=False, height=180,
                                        elem_id="novel-view", elem_classes="pe3d-out")
                        depth = gr.Image(label="Depth", format="png", interactive=False, height=180,
                                         elem_id="depth", elem_classes="pe3d-out")
                    gallery = gr.Gallery(label="Novel views", columns=len(settings.view_yaws_deg), height=210,
                                         object_fit="contain", format="png", elem_id="views")
            portrait.change(handlers.check_portrait, inputs=[portrait, align], outputs=[preview, status])
            align.change(handlers.check_portrait, inputs=[portrait, align], outputs=[preview, status])
            inputs = [portrait, style, prompt, reference, strength, yaw, pitch, align, refine]
            run.click(handlers.run_edit, inputs=inputs, outputs=[status, edited, view, depth, gallery])
        with gr.Tab("Adapt"):
            gr.Markdown("Upload about 10 *before* and *after* images (matched by file name, else in order); "
                        "norm-only adaptation makes a new style.")
            with gr.Row():
                before = gr.File(label="Before", file_count="multiple", type="filepath", elem_id="adapt-before")
                after = gr.File(label="After", file_count="multiple", type="filepath", elem_id="adapt-after")
            name = gr.Textbox(label="New style name", placeholder="e.g. clay_figure", elem_id="adapt-name")
            adapt_prompt = gr.Textbox(label="Instruction (its text prompt)", placeholder="turn the person into a clay figure",
                                      elem_id="adapt-prompt")
            steps = gr.Slider(1, settings.adapt_max_steps, value=min(AdaptSpec().max_steps, settings.adapt_max_steps), step=1,
                              label="Training steps", elem_id="adapt-steps")
            adapt = gr.Button("Adapt", variant="primary", elem_id="adapt-button")
            adapt_status = gr.HTML(elem_id="adapt-status", min_height=60)
            adapt.click(handlers.run_adapt, inputs=[name, adapt_prompt, before, after, steps], outputs=[adapt_status, style])
    return app
