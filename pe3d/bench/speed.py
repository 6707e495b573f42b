"""``pe3d bench speed``: latency of image -> edited triplane -> rendered image (paper: 40 ms on a GPU).

For each model size (the shipped mini model; the paper-size model with random weights, which is
enough for timing) and each device (the CPU; CUDA when present, with ``torch.compile`` and bf16):

* **ours**: the editor's feed-forward pass (prompt encoding included) and the render at the input camera;
* **two-stage**: the 2D editor on the input (the world's style filter), then the prior's
  reconstruction of the edited image and its render;
* **paper-scale 2D editor (estimate)**: one denoising step of an InstructPix2Pix-sized UNet
  (SD-1.5 UNet with 8 input channels, random weights, 64x64 latent, the 3 guidance copies in one
  batch), timed, times the number of steps; VAE and text encoder not included, so a lower bound.
  Added to the paper-size reconstruction time it estimates the paper's "IP2P + Live3D".

Warm-up runs are excluded; every number is the mean (and standard deviation) of ``repeats`` runs.
The timed call and the timer are Table 1's (:meth:`pe3d.bench.methods.EditMethod.edit_and_render`,
:func:`pe3d.evaluation.time_in_turns`); only the image (one portrait, repeated) and the repeats differ.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from pe3d.bench.config import SpeedBenchmark, SpeedSetting, UNetEstimateConfig
from pe3d.bench.report import BenchOutput, Column, Missing, ResultTable, label
from pe3d.config import save_resolved
from pe3d.evaluation.timing import Timing, time_call, time_interleaved

COLUMNS = [
    label("setting", "setting"),
    label("device", "device"),
    label("method", "method"),
    Column("ms", "ms / image", "{:,.1f}", better="lower"),
    Column("std_ms", "± std (ms)", "{:,.1f}"),
    Column("fps", "images / s", "{:.3g}", better="higher"),
    Column("median_ms", "median ms", "{:,.1f}", better="lower"),
    Column("median_fps", "images / s at the median", "{:.3g}", better="higher"),
    Column("ratio", "time × ours", "{:.1f}", better="lower"),
]


@dataclass
class SpeedModels:
    """What one setting times: editor, prior, one input portrait with its part labels and camera."""

    editor: torch.nn.Module
    prior: torch.nn.Module
    image: torch.Tensor
    parts: torch.Tensor
    camera: torch.Tensor
    weights: str


def build_models(setting: SpeedSetting, device: torch.device) -> SpeedModels:
    """The setting's editor and prior (shipped, random or from files) and a world portrait at its input size."""
    from pe3d.devices import inference_memory_layout
    from pe3d.geometry import label_from_yaw_pitch
    from pe3d.models.editor import EditorCore, editor_config_from_yaml, load_editor
    from pe3d.models.prior import PriorModel, load_prior
    from pe3d.recipes.prior import model_yaml_path
    from pe3d.weights import shipped_path
    from pe3d.world import WorldSplit, render_identities, sample_identity

    cfg = editor_config_from_yaml(model_yaml_path(setting.model))

    def pick(value: str, shipped: str, random: Callable[[], torch.nn.Module], load: Callable[[Path], torch.nn.Module]):
        if value == "random":
            torch.manual_seed(0)
            return random()
        return load(shipped_path(shipped) if value == "shipped" else Path(value))

    editor = pick(setting.editor, "editor_mini", lambda: EditorCore(cfg), load_editor)
    prior = pick(setting.prior, "prior_mini", lambda: PriorModel(cfg.prior), load_prior)
    size = editor.cfg.prior.encoder.image_size
    camera = label_from_yaw_pitch([0.0], [0.0])
    render = render_identities([sample_identity(0, WorldSplit().heldout_indices(1)[0])], camera, size)
    weights = "random" if "random" in (setting.editor, setting.prior) else setting.editor
    editor, prior = (inference_memory_layout(model.to(device).eval()) for model in (editor, prior))  # as loaded files are
    return SpeedModels(editor, prior, render.rgb.to(device), render.parts.to(device),
                       camera.to(device), weights)


def _autocast(device: torch.device, bf16: bool):
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def pipelines(models: SpeedModels, setting: SpeedSetting) -> dict[str, Callable[[], torch.Tensor]]:
    """``ours`` and ``two_stage``: image -> triplane -> image at the input camera, i.e. Table 1's timed call
    (:meth:`pe3d.bench.methods.EditMethod.edit_and_render`) of :class:`~pe3d.bench.methods.OursMethod` and
    :class:`~pe3d.bench.methods.TwoStageMethod` on one request."""
    from functools import partial

    from pe3d.bench.evaluation import filter_edit
    from pe3d.bench.methods import EditRequest, OursMethod, TwoStageMethod

    request = EditRequest(models.image, models.camera, setting.prompt, partial(filter_edit, setting.style_filter, models.parts))
    return {"ours": partial(OursMethod(models.editor).edit_and_render, request),
            "two_stage": partial(TwoStageMethod(models.prior).edit_and_render, request)}


def _prepare(fn: Callable[[], torch.Tensor], device: torch.device, cfg: SpeedBenchmark, notes: list[str]) -> Callable[[], torch.Tensor]:
    """On CUDA, bf16 autocast and ``torch.compile`` (eager when compiling fails); on the CPU the call as Table 1 times it."""
    run = fn
    if device.type == "cuda" and cfg.compile_on_gpu:
        try:
            run = torch.compile(fn)
        except Exception as error:  # noqa: BLE001 - compile support varies by platform; eager still times honestly
            notes.append(f"torch.compile failed on {device} ({type(error).__name__}); timed eagerly")

    def call() -> torch.Tensor:
        with torch.no_grad(), _autocast(device, cfg.bf16_on_gpu):
            return run()

    return call


def unet_step(cfg: UNetEstimateConfig, device: torch.device) -> Callable[[], torch.Tensor]:
    """One denoising step of an InstructPix2Pix-shaped UNet (random weights) on ``guidance_batch`` latents."""
    from diffusers import UNet2DConditionModel

    levels = len(cfg.block_out_channels)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=cfg.latent_size,
        in_channels=8,
        out_channels=4,
        layers_per_block=cfg.layers_per_block,
        block_out_channels=tuple(cfg.block_out_channels),
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim,
    ).to(device).eval()
    latents = torch.randn(cfg.guidance_batch, 8, cfg.latent_size, cfg.latent_size, device=device)
    text = torch.randn(cfg.guidance_batch, cfg.text_tokens, cfg.cross_attention_dim, device=device)
    timestep = torch.tensor(500, device=device)
    return lambda: unet(latents, timestep, encoder_hidden_states=text).sample


def available_devices(requested: list[str], notes: list[str]) -> list[torch.device]:
    """The requested devices that exist here (a note says which were skipped)."""
    devices = []
    for name in requested:
        if name == "cuda" and not torch.cuda.is_available():
            notes.append("CUDA: not available on this machine, so no GPU rows (torch.compile + bf16 are used there).")
            continue
        if name not in ("cpu", "cuda"):
            raise ValueError(f"speed: devices must be cpu and/or cuda, got {name!r}")
        devices.append(torch.device(name))
    return devices


def _row(setting: str, device: torch.device, method: str, timing: Timing, ours: Timing | None) -> dict:
    ratio = timing.mean_ms / ours.mean_ms if ours is not None else Missing("ours not timed")
    return {"setting": setting, "device": device.type, "method": method, "ms": timing.mean_ms, "std_ms": timing.std_ms,
            "fps": timing.fps, "median_ms": timing.median_ms, "median_fps": timing.median_fps, "ratio": ratio}


def run_speed(cfg: SpeedBenchmark, out: Path) -> BenchOutput:
    """Time every setting on every device; the table has one row per (setting, device, method)."""
    notes: list[str] = []
    devices = available_devices(cfg.devices, notes)
    table = ResultTable(cfg.title or "Latency: image → edited triplane → image", list(COLUMNS))
    jobs = [(s, d) for s in cfg.settings for d in devices]
    for setting, device in tqdm(jobs, desc="speed settings", disable=not cfg.progress):
        save_resolved({"setting": setting, "device": device.type, "repeats": cfg.repeats, "warmup": cfg.warmup,
                       "compile_on_gpu": cfg.compile_on_gpu, "bf16_on_gpu": cfg.bf16_on_gpu},
                      out / "runs" / f"{setting.name}-{device.type}" / "config.yaml")
        models = build_models(setting, device)
        prepared = {name: _prepare(fn, device, cfg, notes) for name, fn in pipelines(models, setting).items()}
        timings = time_interleaved(prepared, setting.repeats or cfg.repeats, cfg.warmup, device)
        name = f"{setting.name} ({models.editor.cfg.prior.encoder.image_size}² in, weights: {models.weights})"
        table.add(**_row(name, device, "ours: editor + render", timings["ours"], timings["ours"]))
        table.add(**_row(name, device, "two-stage: style filter (2D) + prior + render", timings["two_stage"], timings["ours"]))
        if cfg.unet.enabled and setting.ip2p_estimate:
            table.rows += _unet_rows(cfg, name, device, timings, notes)
        del models
    table.notes += notes + _notes(cfg)
    return BenchOutput([table])


def _unet_rows(cfg: SpeedBenchmark, setting: str, device: torch.device, timings: dict[str, Timing], notes: list[str]) -> list[dict]:
    unet = cfg.unet
    step = time_call(_prepare(unet_step(unet, device), device, cfg, notes), unet.repeats, unet.warmup, device)
    editor_2d = Timing(tuple(s * unet.steps for s in step.seconds))
    reconstruction = timings["two_stage"]  # the filter costs ~ms; the prior + render dominate
    total = Timing(tuple(a + b for a, b in zip(editor_2d.seconds, reconstruction.seconds[: len(editor_2d.seconds)])))
    ours = timings["ours"]
    sized = "SD-1.5 size" if list(unet.block_out_channels) == [320, 640, 1280, 1280] else f"reduced: channels {list(unet.block_out_channels)}"
    return [
        _row(setting, device, f"IP2P UNet, 1 step × {unet.guidance_batch} latents ({sized}, measured)", step, ours),
        _row(setting, device, f"2D editor estimate: {unet.steps} steps × that step", editor_2d, ours),
        _row(setting, device, "two-stage estimate: IP2P (2D) + prior + render", total, ours),
    ]


def _repeats_text(cfg: SpeedBenchmark) -> str:
    """``"5 repeats"``, or the count of each setting when they differ (``"50 repeats (mini), 5 (paper)"``)."""
    counts = [(s.name, s.repeats or cfg.repeats) for s in cfg.settings]
    if len({n for _, n in counts}) <= 1:
        return f"{counts[0][1] if counts else cfg.repeats} repeats"
    return "repeats: " + ", ".join(f"{n} ({name})" for name, n in counts)


def _notes(cfg: SpeedBenchmark) -> list[str]:
    return [
        f"Mean ± std and median over {_repeats_text(cfg)} after {cfg.warmup} warm-up run(s), ours and two-stage taking turns "
        "(so a changing load on a shared machine hits both alike), batch 1, render at the input camera "
        "at the model's neural rendering resolution (mini: 64² rays, 12 + 12 samples each; paper: 128² + super-resolution to 512²).",
        "The paper-size model has random weights: its cost is that of the trained one (same architecture).",
        "The IP2P rows are an estimate: one UNet step timed here × the step count; the VAE, the text encoder and the "
        "scheduler are left out, so the real 2D editor is slower still.",
        f"GPU runs (when present) use torch.compile={cfg.compile_on_gpu} and bf16 autocast={cfg.bf16_on_gpu}.",
    ]


__all__ = ["available_devices", "build_models", "pipelines", "run_speed", "unet_step"]
