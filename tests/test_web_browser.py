"""``pe3d serve`` end to end in a real headless Chromium (Debian's ``chromium`` package, driven by Playwright).

The module installs Chromium with apt-get when it is missing (as root); it is skipped only
when Chromium cannot be installed, with that reason. Playwright's own browser downloads are
never used (``executable_path`` points at the system Chromium).
"""

import io
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason='the web interface is an optional extra: pip install -e ".[test]"')
sync_api = pytest.importorskip("playwright.sync_api", reason='Playwright drives the browser: pip install -e ".[test]"')

from pe3d.geometry import label_from_yaw_pitch
from pe3d.turntable import to_uint8
from pe3d.web import serve
from pe3d.web.limits import UploadLimits
from pe3d.web.settings import WebSettings
from pe3d.world import WorldSplit, render_identity, sample_identity

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
MAX_BYTES = 300_000
MAX_PIXELS = 1_000_000
RESOLUTION = 64
TIMEOUT_MS = 120_000


def _apt_install_chromium() -> str | None:
    """Install Debian's chromium; returns the failure reason, or None on success."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root, so apt-get cannot install it"
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = None
    for command in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if command[1] == "install" and result.returncode == 0:
            return None
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"apt-get exited with {result.returncode}"


def find_or_install_chromium() -> str:
    """Path of a Chromium binary, installing Debian's package if needed; skips the module if impossible."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    reason = _apt_install_chromium()
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(f"Chromium could not be installed: {reason or 'apt-get succeeded but no chromium binary was found'}")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """A world portrait, a text file, a file over the byte limit and a small file over the pixel limit."""
    folder = tmp_path_factory.mktemp("uploads")
    split = WorldSplit()
    identity = sample_identity(split.seed, int(split.indices("heldout", 1, 5)[0]))
    portrait = render_identity(identity, label_from_yaw_pitch(0.0, 0.0), resolution=RESOLUTION).rgb[0]
    Image.fromarray(to_uint8(portrait)).save(folder / "portrait.png")
    (folder / "notes.txt").write_text("this is not a portrait")
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "huge.png")  # incompressible: ~480 KB
    Image.new("RGB", (1200, 1000), (200, 180, 160)).save(folder / "wide.png")  # a few KB, 1.2 M pixels
    assert (folder / "huge.png").stat().st_size > MAX_BYTES and (folder / "wide.png").stat().st_size < MAX_BYTES
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page on 127.0.0.1 (a free port) with the shipped mini editor, in this process."""
    port = _free_port()
    settings = WebSettings(port=port, resolution=RESOLUTION, view_yaws_deg=[30.0],
                           runs_dir=str(tmp_path_factory.mktemp("web-runs")),
                           limits=UploadLimits(max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS))
    app = serve(settings, block=False)
    assert app.server_name == "127.0.0.1"  # localhost unless told otherwise
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="module")
def browser():
    executable = find_or_install_chromium()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    page.wait_for_selector("#portrait input[type=file]", state="attached")
    yield page
    context.close()


def _upload_portrait(page, path) -> None:
    clear = page.locator("#portrait button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#portrait input[type=file]").set_input_files(str(path))


def _status(page) -> str:
    return page.locator("#edit-status").inner_text()


def test_upload_pick_a_style_and_get_the_edit(page, uploads):
    _upload_portrait(page, uploads / "portrait.png")
    page.wait_for_function("document.querySelector('#preview img') !== null")
    page.locator("#style input").click()
    page.get_by_role("option", name="bronze_statue").click()
    page.locator("#edit-button").click()
    page.wait_for_function("(document.querySelector('#edit-status')?.innerText ?? '').startsWith('edited')")
    page.wait_for_selector("#edited img")
    response = page.request.get(page.locator("#edited img").get_attribute("src"))
    assert response.ok
    edited = Image.open(io.BytesIO(response.body())).convert("RGB")
    assert edited.size == (RESOLUTION, RESOLUTION)
    source = Image.open(uploads / "portrait.png").convert("RGB")
    difference = np.abs(np.asarray(edited, dtype=np.float32) - np.asarray(source, dtype=np.float32)).mean()
    assert difference > 10, f"the edited image is too close to the input (mean |diff| {difference:.1f} of 255)"
    assert page.locator("#novel-view img").count() == 1 and page.locator("#depth img").count() == 1
    assert page.locator("#views img").count() >= 1
    assert "refined" not in _status(page)
    # the "refine the detail to the photo" switch: the next edit is refined, and the status says so
    page.locator("#refine input[type=checkbox]").check()
    page.locator("#edit-button").click()
    page.wait_for_function("(document.querySelector('#edit-status')?.innerText ?? '').includes('refined to the photo in 200 steps')")
    page.locator("#refine input[type=checkbox]").uncheck()


@pytest.mark.parametrize(
    "name, message",
    [
        ("notes.txt", "notes.txt: not an image"),
        ("wide.png", f"wide.png: 1200x1000 is over the {MAX_PIXELS:,}-pixel limit"),
    ],
)
def test_bad_uploads_show_a_message_in_the_page(page, uploads, name, message):
    _upload_portrait(page, uploads / name)
    page.wait_for_function(f"(document.querySelector('#edit-status')?.innerText ?? '').includes({message!r})")
    assert page.locator("#edit-status .pe3d-error").count() == 1
    page.locator("#edit-button").click()  # submitting anyway gives the same refusal, and no output
    page.wait_for_function("(document.querySelector('#edit-status')?.innerText ?? '').includes('⚠')")
    assert message in _status(page) and page.locator("#edited img").count() == 0


def test_oversized_upload_is_refused_before_it_reaches_the_server(page, uploads):
    _upload_portrait(page, uploads / "huge.png")
    toast = page.get_by_text("huge.png", exact=False).filter(has_text="exceed")
    toast.first.wait_for()
    assert "maximum allowed size" in toast.first.inner_text()
    assert page.locator("#preview img").count() == 0 and "face" not in _status(page)


@pytest.fixture(scope="module")
def adapt_pairs(tmp_path_factory):
    """Three held-out world portraits (``faceN.png``) and their golden-statue edits (``faceN.png`` in ``after/``)."""
    from pe3d.world import apply_style_filter, render_identities

    folder = tmp_path_factory.mktemp("adapt-uploads")
    split = WorldSplit()
    identities = [sample_identity(split.seed, int(i)) for i in split.indices("heldout", 3, 20)]
    render = render_identities(identities, label_from_yaw_pitch([0.0] * 3, [0.0] * 3), resolution=RESOLUTION)
    edited = apply_style_filter("golden_statue", render.rgb, render.parts).clamp(0, 1)
    (folder / "before").mkdir()
    (folder / "after").mkdir()
    for index in range(3):
        Image.fromarray(to_uint8(render.rgb[index])).save(folder / "before" / f"face{index}.png")
        Image.fromarray(to_uint8(edited[index])).save(folder / "after" / f"face{index}.png")
    return folder


@pytest.fixture
def own_styles_dir(tmp_path, monkeypatch):
    """New styles go to a temporary styles folder (the server runs in this process and reads PE3D_STYLES per call)."""
    monkeypatch.setenv("PE3D_STYLES", str(tmp_path / "styles"))
    return tmp_path / "styles"


def test_adapt_tab_trains_a_style_that_the_edit_tab_then_uses(page, adapt_pairs, own_styles_dir):
    page.get_by_role("tab", name="Adapt").click()
    for side in ("before", "after"):
        files = sorted(str(path) for path in (adapt_pairs / side).glob("*.png"))
        page.locator(f"#adapt-{side} input[type=file]").set_input_files(files)
        page.wait_for_selector(f"#adapt-{side} td.filename[aria-label='face2.png']")  # the upload finished
    page.locator("#adapt-name").get_by_role("textbox").fill("gold_in_browser")
    page.locator("#adapt-prompt").get_by_role("textbox").fill("make the person a golden statue")
    steps = page.locator("#adapt-steps input[type=number]")
    steps.fill("3")
    steps.press("Enter")
    page.locator("#adapt-button").click()
    page.wait_for_function("/is ready|⚠/.test(document.querySelector('#adapt-status')?.innerText ?? '')")
    status = page.locator("#adapt-status").inner_text()
    assert "'gold_in_browser' is ready" in status, status
    assert (own_styles_dir / "gold_in_browser" / "adapter.safetensors").is_file()
    assert len(list((own_styles_dir / "gold_in_browser" / "pairs" / "after").glob("*.png"))) == 3

    page.get_by_role("tab", name="Edit").click()
    assert page.locator("#style input").input_value() == "gold_in_browser"  # selected for the user after training
    _upload_portrait(page, adapt_pairs / "before" / "face0.png")
    page.wait_for_function("document.querySelector('#preview img') !== null")
    page.locator("#edit-button").click()
    page.wait_for_function("(document.querySelector('#edit-status')?.innerText ?? '').startsWith('edited')")
    assert "adapter gold_in_browser" in _status(page), _status(page)  # the edit ran with the new adapter
    page.wait_for_selector("#edited img")
    response = page.request.get(page.locator("#edited img").get_attribute("src"))
    edited = Image.open(io.BytesIO(response.body())).convert("RGB")
    assert edited.size == (RESOLUTION, RESOLUTION)
