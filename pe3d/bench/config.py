"""Typed benchmark configs (``benchmarks/*.yaml``) and how they are found and loaded.

A benchmark YAML names its ``kind``; the kind selects the schema:

* ``table1``: ours against the two baselines (paper Table 1), :class:`Table1Benchmark`;
* ``ablation``: distillation-loss variants (paper Fig. 6), :class:`AblationBenchmark`;
* ``adaptation``: pairs x time checkpoints of norm-only adaptation (paper Table 2), :class:`AdaptationBenchmark`;
* ``speed``: latency of image -> edited triplane -> image, :class:`SpeedBenchmark`;
* ``quality``: per style and view, ours vs. the teacher, no edit and the ceiling, :class:`QualityBenchmark`.

Order of precedence: schema defaults <- the YAML <- ``key=value`` overrides. Unknown keys
and wrong types fail naming the file and the key path (:func:`pe3d.config.load_structured`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml

from pe3d.config import ConfigError, benchmarks_dir, load_structured, parse_overrides
from pe3d.evaluation.world import WorldEvalConfig
from pe3d.losses import ImageLossConfig
from pe3d.recipes.editing import AdaptFitConfig, DistillFitConfig


@dataclass
class MetricsConfig:
    """Which metrics run and where their weights come from (nothing is downloaded)."""

    identity_backend: str = "dlib"
    face_upsample: int = 2
    """dlib detector upsampling (2 finds the faces of 64-pixel renders)."""
    clip_model: str = "ViT-B-32"
    clip_weights: str = ""
    """Local open_clip weights; without them CLIP_r is reported as n/a."""
    lpips_net: str = "alex"
    lpips_weights: str = ""
    """Local torchvision backbone for LPIPS; without it LPIPS is reported as n/a and
    ``1 - SSIM`` stands in as the perceptual distance."""
    consistency_yaws_deg: list[float] = field(default_factory=lambda: [-30.0, -15.0, 0.0, 15.0, 30.0])
    """Cameras of the multi-view identity consistency (3D) score."""


@dataclass
class RealPhotoConfig:
    """Real portraits scored without ground truth (identity and 3D consistency only).

    ``photos``: ``astronaut`` (``skimage.data.astronaut()``, ships offline) or image paths.
    """

    photos: list[str] = field(default_factory=lambda: ["astronaut"])
    face: str = "largest"
    resolution: int = 64
    """Side of the aligned crop and of the renders scored."""


@dataclass
class BenchmarkBase:
    """Fields every benchmark has."""

    kind: str = ""
    title: str = ""
    note: str = ""
    """Printed under the title: budgets, scaled-down settings, the machine."""
    out: str = ""
    """Results folder (default ``runs/bench/<config name>``; ``--out`` wins)."""
    threads: int = 0
    """``torch.set_num_threads`` (0 = leave as is)."""
    progress: bool = True


@dataclass
class OptimisationBaselineConfig:
    """Per-image optimisation: the prior's triplane of the input, optimised for ``steps`` Adam
    steps so its render at the input camera matches the 2D edit (``loss``)."""

    steps: int = 100
    lr: float = 0.01
    render_resolution: int = 32
    loss: ImageLossConfig = field(default_factory=lambda: ImageLossConfig(l2=1.0, perceptual="none", perceptual_weight=0.0))


@dataclass
class Table1Benchmark(BenchmarkBase):
    """Ours against the two-stage (2D edit, then prior) and per-image optimisation baselines."""

    kind: str = "table1"
    editor: str = ""
    """Base editor weights ("" = the shipped mini editor)."""
    prior: str = ""
    """Prior weights for the baselines ("" = the shipped mini prior)."""
    methods: list[str] = field(default_factory=lambda: ["ours", "two_stage", "optimisation"])
    world: WorldEvalConfig = field(default_factory=WorldEvalConfig)
    real: RealPhotoConfig = field(default_factory=RealPhotoConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    optimisation: OptimisationBaselineConfig = field(default_factory=OptimisationBaselineConfig)


@dataclass
class VariantConfig:
    """One ablation variant: a name and ``key=value`` overrides of the distillation config."""

    name: str = ""
    overrides: list[str] = field(default_factory=list)
    description: str = ""


def _ablation_distill() -> DistillFitConfig:
    cfg = DistillFitConfig(styles=["bronze_statue", "zombie"], pairs_per_style=64)
    cfg.trainer.max_steps = 120
    cfg.trainer.max_minutes = 3.0
    cfg.trainer.checkpoint_every_n_steps = 50
    cfg.system.num_views = 2
    cfg.system.view_ray_stride = 2
    return cfg


@dataclass
class AblationBenchmark(BenchmarkBase):
    """Each variant's editor is distilled from the prior with the same budget, then scored."""

    kind: str = "ablation"
    distill: DistillFitConfig = field(default_factory=_ablation_distill)
    """Settings shared by every variant (``out`` and ``pairs_dir`` are set by the benchmark)."""
    variants: list[VariantConfig] = field(default_factory=list)
    world: WorldEvalConfig = field(default_factory=WorldEvalConfig)
    figure_identities: int = 2
    """Held-out identities shown in the Fig. 6-like figure."""


@dataclass
class AdaptationBenchmark(BenchmarkBase):
    """Norm-only adaptation with ``pair_counts`` pairs, scored at training-time checkpoints."""

    kind: str = "adaptation"
    adapt: AdaptFitConfig = field(default_factory=lambda: AdaptFitConfig(style="golden_statue"))
    """Settings shared by every run (``num_pairs``, ``out``, ``export``, ``pairs_dir`` and the
    trainer's time limit are set by the benchmark)."""
    pair_counts: list[int] = field(default_factory=lambda: [2, 5, 10, 20, 50])
    checkpoints_min: list[float] = field(default_factory=lambda: [0.1, 0.5, 1.0, 2.0])
    """Training minutes at which the adapter is snapshotted and later scored (paper: 0.1, 1, 2, 5 on a GPU)."""
    world: WorldEvalConfig = field(default_factory=lambda: WorldEvalConfig(styles=["golden_statue"]))
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    table_metrics: list[str] = field(default_factory=lambda: ["distance", "edit_psnr"])
    """One Table 2 (pairs x checkpoints) and one plot per metric: ``distance`` (LPIPS, or 1 - SSIM without
    its weights), ``edit_psnr``, ``novel_psnr``, ``novel_depth_error``."""


@dataclass
class SpeedSetting:
    """A model size to time: ``model`` names ``configs/model/<model>.yaml``.

    ``editor`` / ``prior``: weight files, ``shipped`` (the mini weights in the package) or
    ``random`` (fresh weights of the model config: enough for timing).
    """

    name: str = ""
    model: str = "mini"
    editor: str = "shipped"
    prior: str = "shipped"
    prompt: str = "turn the person into a bronze statue"
    style_filter: str = "bronze_statue"
    """The 2D editor of the embedded world (a style filter) used by the two-stage baseline."""
    ip2p_estimate: bool = False
    """Also time the paper-scale 2D editor (:class:`UNetEstimateConfig`) next to this setting."""
    repeats: int = 0
    """Timed calls of each pipeline for this setting; 0 = the benchmark's ``repeats``."""

    def __post_init__(self) -> None:
        if self.repeats < 0:
            raise ValueError(f"speed setting {self.name!r}: repeats must be >= 0 (0 = the benchmark's), got {self.repeats}")


@dataclass
class UNetEstimateConfig:
    """A paper-scale 2D editor (InstructPix2Pix: the SD-1.5 UNet with 8 input channels), random
    weights, timed for one denoising step; its cost x ``steps`` estimates the 2D edit."""

    enabled: bool = True
    steps: int = 100
    """Denoising steps (the diffusers InstructPix2Pix pipeline's default)."""
    guidance_batch: int = 3
    """Classifier-free guidance on text and image runs the UNet on 3 latents per step."""
    latent_size: int = 64
    block_out_channels: list[int] = field(default_factory=lambda: [320, 640, 1280, 1280])
    layers_per_block: int = 2
    cross_attention_dim: int = 768
    attention_head_dim: int = 8
    text_tokens: int = 77
    repeats: int = 2
    warmup: int = 1


@dataclass
class SpeedBenchmark(BenchmarkBase):
    """Latency of ours and of the two-stage baseline, per model size and device."""

    kind: str = "speed"
    settings: list[SpeedSetting] = field(
        default_factory=lambda: [SpeedSetting(name="mini"), SpeedSetting(name="paper", model="paper", editor="random", prior="random", ip2p_estimate=True)]
    )
    devices: list[str] = field(default_factory=lambda: ["cpu", "cuda"])
    """Devices to time on; ``cuda`` is skipped (and said so) when absent."""
    repeats: int = 5
    warmup: int = 2
    compile_on_gpu: bool = True
    bf16_on_gpu: bool = True
    unet: UNetEstimateConfig = field(default_factory=UNetEstimateConfig)


@dataclass
class CeilingConfig:
    """Per-identity triplane fitting to ground truth (decoder and renderer frozen).

    Fits ``fit_views`` random cameras plus every tested view, ``views_per_step`` of them a step,
    each on a dilated patch (every ``ray_stride``-th ray); Adam with a cosine decay over at most
    ``max_steps`` steps. With ``check_every > 0`` the fit is stopped by a deterministic convergence
    check: every ``check_every`` steps all fitted views are rendered in eval mode (no jitter) and the
    mean PSNR is compared with the check ``check_window`` checks before; the fit stops when it rose by
    less than ``min_gain_db``. With ``check_every == 0`` it stops when the (noisy) training loss of the
    last ``patience`` steps fell by less than ``tolerance`` (relative) against the ``patience`` steps
    before, which ends fits early (docs/results/quality/ceiling_convergence.md).
    """

    enabled: bool = True
    identities: int = 4
    """How many of the held-out identities are fitted (the first ones; the cost grows with it)."""
    fit_views: int = 8
    views_per_step: int = 3
    ray_stride: int = 2
    max_steps: int = 400
    lr: float = 0.03
    patience: int = 50
    tolerance: float = 0.005
    check_every: int = 0
    """Steps between convergence checks (eval renders of every fitted view); 0 = the loss-based stop."""
    check_window: int = 2
    """A check compares the mean PSNR with the one this many checks before."""
    min_gain_db: float = 0.1
    """The fit stops when the mean PSNR over the fitted views rose by less than this over the window."""

    def __post_init__(self) -> None:
        if self.check_every < 0 or self.check_window < 1:
            raise ValueError(f"ceiling: check_every must be >= 0 and check_window >= 1, got {self.check_every}, "
                             f"{self.check_window}")


@dataclass
class QualityBenchmark(BenchmarkBase):
    """Per style, per view: ours (train / test prompts; optionally refined), the two-stage teacher, no edit and the
    ceiling."""

    kind: str = "quality"
    editor: str = ""
    """Base editor weights ("" = the shipped mini editor)."""
    prior: str = ""
    """Prior weights ("" = the shipped mini prior)."""
    styles: list[str] = field(
        default_factory=lambda: ["bronze_statue", "pencil_sketch", "zombie", "blue_hair", "pop_art", "marble_statue"]
    )
    identities: int = 8
    world_seed: int = 0
    resolution: int = 64
    novel_yaws_deg: list[float] = field(default_factory=lambda: [-30.0, 30.0])
    novel_pitches_deg: list[float] = field(default_factory=lambda: [-15.0, 15.0])
    prompt_index: int = 0
    """Which train prompt and which test prompt of each style (``prompts.train[i]``, ``prompts.test[i]``)."""
    every_prompt: bool = True
    """Also score ours over *every* train prompt and every test prompt of each style (rows ``ours (every
    train prompt)`` / ``ours (every test prompt)``, each image scored once per prompt), so that a style's
    score does not hang on one paraphrase."""
    refine_steps: int = 0
    """``> 0``: also what ``pe3d edit`` gives by default (200 steps): rows ``ours + refinement (test prompt)`` (the
    test-prompt edit plus the detail residual fitted to the input in this many steps, :class:`pe3d.refinement.RefineConfig`
    defaults, at the style's ``refine.strength``), ``prior + refinement`` (the reconstruction plus the same
    residual; one fit per identity, shared by every style) and ``two-stage + refinement`` (the teacher refined to
    its own input, the filtered image; one fit per style). 0: the one pass only."""
    ceiling: CeilingConfig = field(default_factory=CeilingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    grid_identities: int = 2


BENCHMARK_KINDS: dict[str, type] = {
    "table1": Table1Benchmark,
    "ablation": AblationBenchmark,
    "adaptation": AdaptationBenchmark,
    "speed": SpeedBenchmark,
    "quality": QualityBenchmark,
}
"""``kind`` -> its config schema."""


def resolve_benchmark(name: str | Path) -> Path:
    """A benchmark YAML path from a path or a name under ``benchmarks/`` (``table1``, ``ci/table1``)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"{path}: benchmark config not found")
        return path
    candidate = benchmarks_dir() / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(str(p.relative_to(benchmarks_dir()).with_suffix("")) for p in benchmarks_dir().rglob("*.yaml"))
    raise ConfigError(f"unknown benchmark {str(name)!r}: give a YAML path or one of {known}")


def load_benchmark(name: str | Path, overrides: Sequence[str] = ()) -> BenchmarkBase:
    """The typed config of a benchmark YAML (chosen by its ``kind``), with ``key=value`` overrides."""
    path = resolve_benchmark(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    kind = parse_overrides(overrides).get("kind", data.get("kind"))
    if kind not in BENCHMARK_KINDS:
        raise ConfigError(f"{path}: key 'kind' must be one of {sorted(BENCHMARK_KINDS)}, got {kind!r}")
    cfg = load_structured(BENCHMARK_KINDS[kind], [path], overrides)
    if not cfg.out:
        inside = path.resolve().is_relative_to(benchmarks_dir().resolve())
        name = path.resolve().relative_to(benchmarks_dir().resolve()).with_suffix("") if inside else Path(path.stem)
        cfg.out = str(Path("runs") / "bench" / name)
    return cfg


__all__ = [
    "AblationBenchmark",
    "AdaptationBenchmark",
    "BENCHMARK_KINDS",
    "BenchmarkBase",
    "CeilingConfig",
    "MetricsConfig",
    "OptimisationBaselineConfig",
    "QualityBenchmark",
    "RealPhotoConfig",
    "SpeedBenchmark",
    "SpeedSetting",
    "Table1Benchmark",
    "UNetEstimateConfig",
    "VariantConfig",
    "WorldEvalConfig",
    "benchmarks_dir",
    "load_benchmark",
    "resolve_benchmark",
]
