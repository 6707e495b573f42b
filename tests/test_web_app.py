"""The web interface without a browser: upload limits, the edit and adapt handlers the page calls, ``pe3d serve`` errors."""

import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason='the web interface is an optional extra: pip install -e ".[test]"')

from pe3d.cli import build_parser, main
from pe3d.geometry import label_from_yaw_pitch
from pe3d.turntable import to_uint8
from pe3d.web import is_public_host
from pe3d.web.adapt import AdaptService, match_pairs
from pe3d.web.app import PageHandlers
from pe3d.web.limits import UploadLimits, UploadRejected, load_uploaded_image
from pe3d.web.service import EditService
from pe3d.web.settings import WebSettings
from pe3d.world import WorldSplit, apply_style_filter, render_identities, sample_identity


def _world_portraits(count: int, size: int = 64):
    split = WorldSplit()
    identities = [sample_identity(split.seed, int(i)) for i in split.indices("heldout", count, 10)]
    return render_identities(identities, label_from_yaw_pitch([0.0] * count, [0.0] * count), resolution=size)


@pytest.fixture(scope="module")
def portraits(tmp_path_factory):
    """Three held-out world portraits and their golden-statue edits, as PNG files."""
    folder = tmp_path_factory.mktemp("uploads")
    render = _world_portraits(3)
    edited = apply_style_filter("golden_statue", render.rgb, render.parts)
    before, after = [], []
    for i in range(3):
        Image.fromarray(to_uint8(render.rgb[i])).save(folder / f"face{i}.png")
        Image.fromarray(to_uint8(edited[i].clamp(0, 1))).save(folder / f"face{i}_gold.png")
        before.append(str(folder / f"face{i}.png"))
        after.append(str(folder / f"face{i}_gold.png"))
    return before, after


@pytest.fixture(scope="module")
def handlers():
    settings = WebSettings(view_yaws_deg=[-30.0, 30.0], resolution=32)
    editing = EditService(settings)
    return PageHandlers(editing, AdaptService(settings, editing.input_size))


def test_limits_refuse_with_one_line_messages(tmp_path):
    limits = UploadLimits(max_bytes=50_000, max_pixels=100 * 100)
    (tmp_path / "notes.png").write_text("not an image at all")
    with pytest.raises(UploadRejected, match=r"^notes.png: not an image"):
        load_uploaded_image(tmp_path / "notes.png", limits)
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + bytes(60_000))
    with pytest.raises(UploadRejected, match=r"^big.png: 0.1 MB is over the 0.0 MB upload limit"):
        load_uploaded_image(tmp_path / "big.png", limits)
    Image.new("RGB", (200, 120)).save(tmp_path / "wide.png")  # small file, too many pixels
    with pytest.raises(UploadRejected, match=r"^wide.png: 200x120 is over the 10,000-pixel limit"):
        load_uploaded_image(tmp_path / "wide.png", limits)
    Image.new("RGB", (40, 40)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    with pytest.raises(UploadRejected, match=r"^cut.png: "):
        load_uploaded_image(tmp_path / "cut.png", limits)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UploadRejected, match="empty"):
        load_uploaded_image(tmp_path / "empty.png", limits)


def test_pairs_match_by_name_else_in_order():
    limits = UploadLimits(max_pairs=3)
    assert match_pairs(["/u/b.png", "/u/a.png"], ["/v/a.jpg", "/v/b.jpg"], limits) == [("/u/b.png", "/v/b.jpg"), ("/u/a.png", "/v/a.jpg")]
    assert match_pairs(["/u/x.png", "/u/y.png"], ["/v/1.png", "/v/2.png"], limits) == [("/u/x.png", "/v/1.png"), ("/u/y.png", "/v/2.png")]
    with pytest.raises(UploadRejected, match="2 'before' images but 1 'after'"):
        match_pairs(["a.png", "b.png"], ["a.png"], limits)
    with pytest.raises(UploadRejected, match="over the limit of 3"):
        match_pairs(list("abcd"), list("abcd"), limits)


def test_edit_handler_returns_images_or_a_status_message(handlers, portraits, tmp_path):
    before, _ = portraits
    status, edited, view, depth, gallery = handlers.run_edit(before[0], "bronze_statue", "", None, 1.0, 20, 5)
    assert "edited" in status and "pe3d-error" not in status
    assert edited.shape == view.shape == depth.shape == (32, 32, 3) and len(gallery) == 2
    source = np.asarray(Image.open(before[0]).resize((32, 32)), dtype=np.float32)
    assert np.abs(edited.astype(np.float32) - source).mean() > 10  # an edit, not a copy of the input
    (tmp_path / "notes.txt").write_text("hello")
    status, *outputs = handlers.run_edit(str(tmp_path / "notes.txt"), "bronze_statue", "", None, 1.0, 0, 0)
    assert "pe3d-error" in status and "notes.txt: not an image" in status
    status, *_ = handlers.run_edit(before[0], "(none)", "", None, 1.0, 0, 0)
    assert "choose a style, type a prompt or upload a reference image" in status
    status, *_ = handlers.run_edit(before[0], "no_such_style", "", None, 1.0, 0, 0)
    assert "unknown style 'no_such_style'" in status


def test_edit_status_names_prompt_words_the_editor_never_saw(handlers, portraits):
    before, _ = portraits
    status, *_ = handlers.run_edit(before[0], "(none)", "make the person look like a ghoul", None, 1.0, 0, 0, False)
    assert "edited" in status and "never trained on 'ghoul'" in status
    status, *_ = handlers.run_edit(before[0], "(none)", "turn the person into a zombie", None, 1.0, 0, 0, False)
    assert "edited" in status and "never trained on" not in status and "read as" not in status
    status, *_ = handlers.run_edit(before[0], "(none)", "a sketchbook portrait of the person", None, 1.0, 0, 0, False)
    assert "read as 'a sketch book portrait of the person'" in status and "never trained on" not in status
    status, *_ = handlers.run_edit(before[0], "(none)", "make the person smile", None, 1.0, 0, 0, False)
    assert "names no style of this editor: the portrait is returned unedited" in status and "never trained on" not in status


def test_unticking_align_takes_a_world_render_as_framed(handlers, tmp_path):
    path = tmp_path / "world256.png"  # large enough for the face detector (held-out identity 12: found)
    Image.fromarray(to_uint8(_world_portraits(3, size=256).rgb[2])).save(path)
    aligned, note = handlers.editing.check_portrait(str(path), align=True)
    as_framed, framed_note = handlers.editing.check_portrait(str(path), align=False)
    upload = np.asarray(Image.open(path).convert("RGB"))
    assert "taken as framed" in framed_note and "face found" in note
    assert as_framed.shape == upload.shape and np.array_equal(as_framed, upload)  # a square upload, untouched
    status, edited, *_ = handlers.run_edit(str(path), "bronze_statue", "", None, 1.0, 0, 0, False)
    assert "edited" in status and "pe3d-error" not in status
    _, aligned_edit, *_ = handlers.run_edit(str(path), "bronze_statue", "", None, 1.0, 0, 0, True)
    assert not np.array_equal(edited, aligned_edit)  # the face fit's crop and camera change the edit


def test_adapt_handler_trains_a_new_selectable_style(handlers, portraits, tmp_path, monkeypatch):
    monkeypatch.setenv("PE3D_STYLES", str(tmp_path / "styles"))
    handlers.adapting.settings.runs_dir = str(tmp_path / "runs")
    before, after = portraits
    reports = []

    def progress(value, desc=None, unit=None):
        reports.append(value)

    status, dropdown = handlers.run_adapt("gold_test", "make the person golden", before, after, 2, progress=progress)
    assert "is ready" in status, status
    assert (tmp_path / "styles" / "gold_test" / "adapter.safetensors").is_file()
    assert reports[-1] == (2, 2)
    assert "gold_test" in handlers.editing.style_choices() and dropdown.value == "gold_test"
    status, edited, *_ = handlers.run_edit(before[0], "gold_test", "", None, 1.0, 0, 0)
    assert "adapter gold_test" in status and handlers.editing.pipe.active_adapter == "gold_test"
    status, _ = handlers.run_adapt("gold_test", "", before, after, 3, progress=progress)
    assert "already exists" in status
    status, _ = handlers.run_adapt("../escape", "", before, after, 3, progress=progress)
    assert "style name '../escape'" in status


def test_serve_defaults_to_localhost_and_needs_gradio(monkeypatch, capsys):
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and WebSettings().host == "127.0.0.1"
    assert is_public_host("0.0.0.0") and not is_public_host("127.0.0.1") and not is_public_host("localhost")
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if gradio were not installed
    assert main(["serve"]) == 2
    assert 'pip install "pe3d[web]"' in capsys.readouterr().err


def test_serve_refine_steps_sharpen_the_edit_towards_the_upload(portraits, monkeypatch):
    """`pe3d serve refine_steps=N`: every edit gets the detail residual fitted to the upload, at the style's
    ``refine.strength`` (marble_statue 0.5)."""
    before, _ = portraits
    settings = WebSettings(view_yaws_deg=[30.0], resolution=64, refine_steps=20)
    plain_settings = WebSettings(view_yaws_deg=[30.0], resolution=64)
    refined = EditService(settings)
    plain = EditService(plain_settings)
    _, sharp, *_ = PageHandlers(refined, AdaptService(settings, refined.input_size)).run_edit(
        before[0], "bronze_statue", "", None, 1.0, 0, 0, False)
    _, soft, *_ = PageHandlers(plain, AdaptService(plain_settings, plain.input_size)).run_edit(
        before[0], "bronze_statue", "", None, 1.0, 0, 0, False)
    def detail(image):  # mean absolute difference between neighbouring pixels
        image = image.astype(np.float32)
        return np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean()

    # the residual carries the upload's detail onto the edit: a sharper picture, not the soft one
    assert np.abs(sharp.astype(np.float32) - soft).mean() > 1.0
    assert detail(sharp) > detail(soft), (detail(sharp), detail(soft))
    with pytest.raises(ValueError, match="refine_steps must be >= 0"):
        WebSettings(refine_steps=-1)
    from pe3d.pipeline import EditPipeline

    asked, call = [], EditPipeline.__call__

    def spy(pipe, *args, refine=None, **kwargs):
        asked.append(refine.strength)
        return call(pipe, *args, refine=refine, **kwargs)

    monkeypatch.setattr(EditPipeline, "__call__", spy)
    handlers = PageHandlers(refined, AdaptService(settings, refined.input_size))
    notes = [handlers.run_edit(before[0], style, "", None, 1.0, 0, 0, False)[0] for style in ("marble_statue", "bronze_statue")]
    assert asked == [0.5, 1.0]
    assert "refined to the photo in 20 steps (the style's strength 0.5)" in notes[0] and "strength" not in notes[1]


def test_the_pages_refine_switch_refines_one_edit(handlers, portraits):
    """The Edit tab's "refine the detail to the photo" switch: ticked, the edit gets pe3d edit's 200 refinement
    steps (the server sets none) and the status says so; unticked, the one-pass edit."""
    before, _ = portraits
    assert handlers.editing.refine_steps(None) == 0 and handlers.editing.refine_steps(False) == 0
    assert handlers.editing.refine_steps(True) == 200
    assert EditService(WebSettings(refine_steps=30)).refine_steps(True) == 30
    status, sharp, *_ = handlers.run_edit(before[0], "bronze_statue", "", None, 1.0, 0, 0, False, True)
    assert "refined to the photo in 200 steps" in status
    status, soft, *_ = handlers.run_edit(before[0], "bronze_statue", "", None, 1.0, 0, 0, False, False)
    assert "refined" not in status
    assert np.abs(sharp.astype(np.float32) - soft).mean() > 1.0
