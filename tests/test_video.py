"""Video editing: MP4 round trip, smoothing filters, and flicker with vs without smoothing on a static clip."""

import pytest
import torch

import pe3d
from pe3d.cli import main
from pe3d.geometry import label_from_yaw_pitch
from pe3d.recipes.edit_video import VideoEditConfig, edit_video, write_static_clip
from pe3d.video import (
    AdaptiveEMA,
    FlickerMeter,
    SmoothingConfig,
    TemporalSmoother,
    VideoLoadError,
    camera_from_parameters,
    camera_parameters,
    flicker,
    read_video,
    write_video,
)

FRAMES = 12


@pytest.fixture(scope="module")
def pipe():
    return pe3d.EditPipeline.from_pretrained()


@pytest.fixture(scope="module")
def static_clip(tmp_path_factory):
    """12 frames of a static shot with per-frame sensor noise and framing jitter."""
    return write_static_clip(tmp_path_factory.mktemp("clip") / "static.mp4", frames=FRAMES, resolution=64)


def test_mp4_round_trip_keeps_count_size_and_content(tmp_path):
    frames = torch.linspace(0.1, 0.9, 6)[:, None, None, None].expand(6, 3, 32, 48).clone()
    path = write_video(tmp_path / "ramp.mp4", frames, fps=8)
    clip = read_video(path)
    assert clip.frames.shape == (6, 3, 32, 48) and clip.fps == pytest.approx(8)
    assert (clip.frames - frames).abs().mean() < 0.02
    assert list(tmp_path.iterdir()) == [path]  # the temp file of the atomic write is gone
    assert read_video(path, max_frames=2).frames.shape[0] == 2


def test_bad_video_files_raise_one_line_errors(tmp_path, capsys):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoLoadError, match="notes.mp4: not a readable video"):
        read_video(tmp_path / "notes.mp4")
    with pytest.raises(VideoLoadError, match="missing.mp4: file not found"):
        read_video(tmp_path / "missing.mp4")
    code = main(["edit-video", str(tmp_path / "notes.mp4"), "--style", "bronze_statue", "--out", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "not a readable video" in err and len(err.strip().splitlines()) == 1
    assert main(["edit-video", str(tmp_path / "notes.mp4"), "--out", str(tmp_path / "o.mp4")]) == 2
    assert "--style" in capsys.readouterr().err


def test_flicker_meter_matches_flicker():
    frames = torch.rand(5, 3, 8, 8)
    meter = FlickerMeter()
    for frame in frames:
        meter.update(frame)
    assert meter.value == pytest.approx(flicker(frames)) and flicker(frames[:1]) == 0.0
    assert flicker(torch.stack([frames[0]] * 3)) == 0.0


def test_ema_averages_noise_and_adaptive_follows_jumps():
    noise = torch.Generator().manual_seed(1)
    signal = 1.0 + 0.1 * torch.randn(200, 8, generator=noise)
    ema = AdaptiveEMA(0.8)
    smoothed = torch.stack([ema(x) for x in signal])
    assert smoothed[20:].std(0).mean() < 0.5 * signal[20:].std(0).mean()
    step = torch.cat([torch.ones(10, 8), 3 * torch.ones(10, 8)])
    plain, adaptive = AdaptiveEMA(0.8), AdaptiveEMA(0.8, adaptive=10.0)
    lag_plain = (torch.stack([plain(x) for x in step])[10] - 3).abs().mean()
    lag_adaptive = (torch.stack([adaptive(x) for x in step])[10] - 3).abs().mean()
    assert lag_adaptive < 0.1 < lag_plain
    with pytest.raises(ValueError, match="strength"):
        SmoothingConfig(strength=1.0)


def test_camera_smoothing_keeps_valid_cameras():
    cams = label_from_yaw_pitch(torch.tensor([0.3, -0.2]), torch.tensor([0.1, 0.0]))
    assert torch.allclose(camera_from_parameters(camera_parameters(cams)), cams, atol=1e-5)
    smoother = TemporalSmoother(SmoothingConfig(strength=0.5))
    smoother.camera(cams[:1])
    middle = camera_parameters(smoother.camera(cams[1:]))
    assert torch.allclose(middle[0, :2], torch.tensor([0.05, 0.05]), atol=1e-5)


def test_smoothing_lowers_flicker_on_a_static_clip(pipe, static_clip, tmp_path):
    cfg = VideoEditConfig(style="bronze_statue", resolution=32, max_frames=FRAMES, compare=True)
    report = edit_video(static_clip, tmp_path / "smooth.mp4", cfg, pipe=pipe)
    print(f"\nflicker input {report.flicker_input:.4f}  edit without smoothing {report.flicker_unsmoothed:.4f}  "
          f"with smoothing ({cfg.smooth.strength}) {report.flicker_output:.4f}")
    assert report.flicker_output < 0.6 * report.flicker_unsmoothed
    clip = read_video(report.out)
    assert clip.frames.shape == (FRAMES, 3, 32, 32) and report.frames == FRAMES and clip.fps == pytest.approx(12)
    assert flicker(clip.frames) < report.flicker_unsmoothed
    assert report.face_misses < FRAMES  # the face detector finds the world head in some frames
    off = edit_video(static_clip, tmp_path / "raw.mp4", VideoEditConfig(style="bronze_statue", resolution=32, max_frames=3,
                                                                        smooth=SmoothingConfig(strength=0.0)), pipe=pipe)
    assert off.flicker_output > 0 and read_video(off.out).frames.shape[0] == 3


def test_orbit_camera_turns_the_head(pipe, static_clip, tmp_path):
    common = dict(prompt="turn the person into a bronze statue", resolution=24, max_frames=4)
    orbit = VideoEditConfig(**common, camera="orbit", orbit_yaw_deg=40, orbit_period_s=1.0)
    frames = read_video(edit_video(static_clip, tmp_path / "orbit.mp4", orbit, pipe=pipe).out).frames
    fixed = read_video(edit_video(static_clip, tmp_path / "fixed.mp4", VideoEditConfig(**common), pipe=pipe).out).frames
    assert frames.shape == fixed.shape == (4, 3, 24, 24)
    # 12 fps, period 1 s: frame 3 is at yaw +40 degrees, frame 0 at 0; the fixed camera stays put
    assert (frames[3] - frames[0]).abs().mean() > 3 * (fixed[3] - fixed[0]).abs().mean()


def test_refined_frames_start_from_the_previous_frames_residual(pipe, static_clip, tmp_path, monkeypatch):
    """``refine_steps``: each frame gets a detail residual, the first fitted from zeros in ``refine_first_steps``,
    every later one started from the previous frame's in ``refine_steps``; the frames differ from the one-pass edit."""
    calls, regions = [], []
    fit, make_region = pipe.detail_residual, pipe.residual_region

    def spy(image, camera, refine, resolution=None, initial=None, region=None):
        residual = fit(image, camera, refine, resolution, initial=initial, region=region)
        calls.append((refine.steps, initial, residual, region))
        return residual

    def region_spy(image, refine):
        regions.append(make_region(image, refine))
        return regions[-1]

    monkeypatch.setattr(pipe, "detail_residual", spy)
    monkeypatch.setattr(pipe, "residual_region", region_spy)
    common = dict(style="bronze_statue", resolution=32, max_frames=4)
    refined = edit_video(static_clip, tmp_path / "refined.mp4", VideoEditConfig(**common, refine_steps=3, refine_first_steps=12), pipe=pipe)
    assert [steps for steps, _, _, _ in calls] == [12, 3, 3, 3]
    assert calls[0][1] is None
    assert all(initial is calls[i][2] for i, (_, initial, _, _) in enumerate(calls[1:]))
    # refine_region "first" (the default): the first frame's hull and empty space, made once, kept for every frame
    assert len(regions) == 1 and regions[0][0] is not None and regions[0][1] is not None
    assert all(region is regions[0] for _, _, _, region in calls)
    each = edit_video(static_clip, tmp_path / "each.mp4", VideoEditConfig(**common, refine_steps=3, refine_first_steps=12,
                                                                          refine_region="each"), pipe=pipe)
    assert len(regions) == 1 and all(region is None for _, _, _, region in calls[4:8])  # each fit makes its own
    assert (read_video(each.out).frames - read_video(refined.out).frames).abs().mean() < 0.02
    del calls[4:]
    plain = edit_video(static_clip, tmp_path / "plain.mp4", VideoEditConfig(**common), pipe=pipe)
    assert len(calls) == 4  # the one-pass edit fits nothing
    assert (read_video(refined.out).frames - read_video(plain.out).frames).abs().mean() > 0.01
    with pytest.raises(pe3d.errors.InvalidInput, match="refine steps must be >= 0"):
        VideoEditConfig(**common, refine_steps=-1).validate()
    # refine_strength 0: the residuals are fitted (and chained) but none of them is added
    nothing = edit_video(static_clip, tmp_path / "zero.mp4", VideoEditConfig(**common, refine_steps=3, refine_first_steps=12,
                                                                             refine_strength=0.0), pipe=pipe)
    assert len(calls) == 8
    assert torch.equal(read_video(nothing.out).frames, read_video(plain.out).frames)
    with pytest.raises(pe3d.errors.InvalidInput, match=r"refine_strength must be in \[0, 2\], got 3"):
        VideoEditConfig(**common, refine_strength=3.0).validate()
    with pytest.raises(pe3d.errors.InvalidInput, match="refine_region must be one of"):
        VideoEditConfig(**common, refine_region="last").validate()
