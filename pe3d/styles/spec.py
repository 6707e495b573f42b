"""The style contract: :class:`StyleSpec`, loaded from ``styles/<name>/style.yaml``.

A *style* is a plugin folder::

    styles/<name>/
        style.yaml      # this schema (required)
        prompts.yaml    # optional: {train: [...], test: [...]}  (or prompts.txt, or inline)
        generator.py    # optional: registers a pair generator by short name
        ...             # anything the generator needs (e.g. before/ and after/ images)

``style.yaml`` names its pair generator by a *short name* (``generator: filter``), never
by a dotted import path. Every key is typed: an unknown key or a mistyped value fails at
load time with a :class:`~pe3d.config.ConfigError` naming the file and the key path.

Prompts follow the paper (Sec. 4.1): 8 text prompts for training and 5 for testing per
style; fewer are accepted (at least 1 + 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from pe3d.config import ConfigError, load_structured
from pe3d.losses import DEPTH_SOURCES

STYLE_FILE = "style.yaml"
"""Name of the file that makes a folder a style."""
PROMPT_FILES = ("prompts.yaml", "prompts.txt")
"""Optional prompt files read when ``style.yaml`` has no ``prompts`` section."""
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
"""Safe style names: lower-case letters, digits, ``_`` and ``-``; no dots or slashes."""
RECOMMENDED_PROMPTS = (8, 5)
"""The paper's train / test prompt counts per style."""
POSE_KINDS = ("ffhq", "frontal")
"""Pose distributions of :class:`PoseSpec`."""
WORLD_SPLITS = ("train", "heldout")
"""World identity splits a pair set can draw from."""


class StyleError(ConfigError):
    """A style cannot be found, is ambiguous, or its plugin code failed (one-line message)."""


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a safe style / generator name (``^[a-z0-9][a-z0-9_-]*$``)."""
    return isinstance(name, str) and NAME_PATTERN.match(name) is not None


@dataclass
class PromptsSpec:
    """Text prompts of a style: ``train`` ones are used for distillation, ``test`` ones held out."""

    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)


@dataclass
class PoseSpec:
    """Camera distribution of the input portraits.

    ``kind``: ``ffhq`` (Gaussian yaw / pitch around frontal, clamped; radians, the
    arguments of :func:`pe3d.geometry.sample_camera_labels`) or ``frontal``.
    """

    kind: str = "ffhq"
    yaw_std: float = 0.3
    pitch_std: float = 0.15
    yaw_limit: float = 0.8
    pitch_limit: float = 0.4


@dataclass
class PairsSpec:
    """How pseudo-label pairs of this style are made.

    ``count``: pairs to write by default (the paper uses 1000 per style); ``resolution``:
    square image side; ``seed``: base seed (pair ``i`` uses a seed derived from it and
    ``i``, so pairs are independent and a resumed run is identical); ``split``: world
    identities to draw from (pair ``i`` shows identity number ``identity_offset + i`` of
    the split, so pair ``i`` of every style shows the same person by default); ``image_fraction``: share of pairs that also get an image
    prompt (a reference in the target style) when ``image_prompts`` is on;
    ``supersample``: anti-aliasing factor of world renders.
    """

    count: int = 1000
    resolution: int = 64
    seed: int = 0
    split: str = "train"
    identity_offset: int = 0
    image_fraction: float = 0.5
    supersample: int = 1
    pose: PoseSpec = field(default_factory=PoseSpec)


@dataclass
class AdaptSpec:
    """Fast-adaptation settings (paper Sec. 3.3 / 4.3: 10 pairs, about 5 minutes on a GPU).

    Defaults fit the mini model on a 2-core CPU: 80 steps (0.4-0.9 min of training on the 2-core CPUs
    measured, with the per-pair cache of frozen outputs). Only ``E_p``'s token mapper and ``E_t``'s
    normalization parameters train, so the learning rate is higher than distillation's. Measured on hand-written styles
    (``tests/test_adaptation_quality.py``, with the previous base editor): longer adaptation over-fits the 10 pairs of a head-only
    recolour (80 steps reach its teacher, 120 fall 0.4 dB and 300 steps 2.3 dB below it), and a
    cap that stops a longer schedule before its decay leaves it 1.2 dB below; a learning rate of
    3e-3 was too low for a recoloured background in 80 steps (12.2 vs 15.1 dB at 6e-3). With the base
    editor distilled on the continued prior (2026-12-03) 6e-3 became too low as well: green_mono_bg
    13.40 dB at 6e-3, 15.76 at 9e-3, 16.69 at 1.2e-2, 17.10 at 1.8e-2 (teacher 15.56), while the
    head-only recolours do not change (green_mono 16.78 / 16.97, golden_statue 20.26 / 20.20 at 6e-3 /
    1.2e-2), so the default was 1.2e-2. With the fifth-stage pair (2026-12-03, teachers far sharper) the
    fixtures' adapted editors converge below their teachers at 1.2e-2 and 80 steps (green_mono_bg 22.45 vs
    24.24 dB, green_mono 21.47 vs 22.24, golden_statue 21.03 vs 21.03); at 2.4e-2: 23.65, 21.51, 21.18.
    160 steps reach 23.80 / 21.46 but take 45 s; 20 pairs, batch 8, depth weight 3 or 30 and triplane
    weight 0 or 1 leave green_mono at 21.40-21.46, and neither is the number of adaptable values the cap
    (``python tools/adaptation_sweep.py green_mono --trainable e_t lr=0.0003``: all of E_t trained, 21.55;
    with 40 pairs 21.66, E_t's norms with 40 pairs 21.52; 2026-12-04). So the default is 2.4e-2. The base
    editor fine-tuned on textured-wall pairs (shipped 2026-12-04) reaches 23.80, 21.61, 21.10 with it; on
    it, all of E_t (``--trainable e_t lr=0.0003``) reaches 21.45 and the whole editor (``--trainable
    editor lr=0.0003``) 21.46 on green_mono. Every number above is on the first 4 held-out identities;
    on the test's 8 (since 2026-12-04) the three are 21.42 / 23.90 / 21.10 against teachers 21.79 / 23.93 /
    21.03, and 4 views per step, wider yaws or 48² training renders leave green_mono within 0.05 dB.
    ``max_minutes``: wall-clock guard (``None``: only ``max_steps`` stops training). It is set well above
    the 80 steps' time: a cap that cuts the schedule changes the result with the machine's speed
    (green_mono_bg, 10 pairs: 15.73 dB after 80 steps, 15.04 after a 70-step schedule, 14.47 when a
    30-second cap stopped the 80-step schedule after about 70 steps on a slower CPU).
    ``depth_source``: the geometry the adapted editor's depth follows (``system.loss.depth_source``):
    ``edited`` (the paper: the prior on the edited image) or ``input`` (the prior on the unedited
    input), for a style that recolours without changing the head's shape: the colour change
    disturbs the prior's depth (golden_statue's teacher: novel-view depth error 0.0295 vs the base
    editor's 0.0181), and with ``input`` the adapted editor's is 0.0251 instead of 0.0280 (edit PSNR
    18.77 instead of 18.55 dB; default adaptation of the previous base editor, 8 held-out identities).
    ``depth_weight``: weight of that depth term (``system.loss.depth_3d``). With the unedited input's
    depth a strong weight holds the geometry and sharpens the edit too (golden_statue, current base
    editor: depth error 0.0232 / 0.0197 / 0.0157 / 0.0154 and edit PSNR 18.51 / 18.93 / 19.92 / 19.52 dB
    at weights 1 / 3 / 10 / 30); with the edited image's depth a weight of 10 gave 18.26 dB, 0.0264.
    ``gradient_clip_norm``: the global L2 norm the adaptation's gradients are clipped to (``0``: none). The base
    editor fine-tuned against the refined teacher (shipped 2026-12-04) diverges on golden_statue at 2.4e-2
    without it (18.05 dB against its 21.03 teacher; 21.20 at 1.2e-2, where green_mono_bg falls to 22.70); clipped
    at 0.3 the default learning rate gives golden_statue 21.20, green_mono 21.39 and green_mono_bg 23.80 (unclipped
    21.39 / 23.78; at 1.0 nothing is clipped, 0.1 gives 20.95 / 21.36 / 23.90). ``python tools/adaptation_sweep.py
    STYLE trainer.gradient_clip_norm=C``, 8 held-out identities.
    """

    num_pairs: int = 10
    max_steps: int = 80
    lr: float = 2.4e-2
    batch_size: int = 4
    max_minutes: float | None = 2.0
    depth_source: str = "edited"
    depth_weight: float = 1.0
    gradient_clip_norm: float = 0.3


@dataclass
class RefineSpec:
    """How the test-time refinement (:mod:`pe3d.refinement`) treats this style's edits.

    ``strength``: the multiple of the photo's missing detail (the residual fitted to the photo) added to the
    style's edit by ``pe3d edit --style``, ``pe3d edit-video --style`` and the web page
    (:attr:`pe3d.refinement.RefineConfig.strength`); 1 = all of it. Lower it for a style whose target does not
    keep the photo's colours: marble_statue's smooth stone got the photo's tints back with the detail and lost
    0.2-0.4 dB at the novel views at 1. On held-out identities 8-15 (strengths 0 to 1.5 tried) 0.25 and 0.5
    lose about 0.1 dB there at most against the one-pass edit and gain at the input view; 0.5 keeps the glasses
    visible, so marble_statue has 0.5; on identities 0-7 it gains +0.2 / +0.3 / +0.2 / +0.2 / +0.2 dB over 1 at
    the input / yaw -30 / yaw +30 / pitch -15 / pitch +15 (docs/results/quality/refinement.md, "A strength per
    style"). Every other built-in style is best at 1.
    """

    strength: float = 1.0


@dataclass
class StyleSpec:
    """One style: its generator (by short name) and parameters, prompts, pair, adapt and refine settings.

    ``name`` must equal the folder name (it may be omitted in YAML: the folder name is
    used). ``params`` is checked against the generator's own ``Params`` schema at load
    time. ``folder`` is filled in by :func:`load_style` (never written in YAML).

    ``reference``: an image file in the style folder that *is* the style's image prompt (the
    paper's reference image P, Sec. 3.2): ``pe3d fit adapt`` prompts every pair with it, and
    ``pe3d edit --style`` / the web page use it on editors that take reference images only (the
    imported 3DPE release). Empty: pairs carry their own prompts (text, or with
    ``image_prompts`` a reference in the target style).
    """

    name: str = ""
    description: str = ""
    generator: str = "filter"
    params: dict[str, Any] = field(default_factory=dict)
    prompts: PromptsSpec = field(default_factory=PromptsSpec)
    image_prompts: bool = True
    pairs: PairsSpec = field(default_factory=PairsSpec)
    adapt: AdaptSpec = field(default_factory=AdaptSpec)
    refine: RefineSpec = field(default_factory=RefineSpec)
    reference: str = ""
    folder: str = ""

    @property
    def path(self) -> Path:
        """The style folder as a :class:`~pathlib.Path`."""
        return Path(self.folder)

    @property
    def reference_path(self) -> Path | None:
        """``<folder>/<reference>``, or ``None`` when the style has no reference image."""
        return self.path / self.reference if self.reference else None

    @property
    def style_file(self) -> Path:
        """``<folder>/style.yaml``."""
        return self.path / STYLE_FILE

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON / YAML friendly dict of every field."""
        from dataclasses import asdict

        return asdict(self)


# ----------------------------------------------------------------------------- helpers


def _read_mapping(path: Path) -> dict[str, Any]:
    """Parse a YAML file into a mapping, or raise ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: file not found") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first = str(error).replace("\n", " ")
        raise ConfigError(f"{path}: not valid YAML: {first}") from error
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: key {key!r}: keys must be strings")
    return dict(data)


def _check_prompt_list(value: Any, path: Path, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: key '{key}': expected a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{path}: key '{key}[{i}]': expected a non-empty string, got {item!r}")
        out.append(item.strip())
    return out


def read_prompts_txt(path: Path) -> dict[str, list[str]]:
    """Parse a ``prompts.txt``: ``[train]`` / ``[test]`` section headers, one prompt a line.

    Blank lines and lines starting with ``#`` are ignored.
    """
    sections: dict[str, list[str]] = {"train": [], "test": []}
    current: str | None = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read prompts: {error}") from error
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().lower()
            if current not in sections:
                raise ConfigError(f"{path}:{number}: unknown section [{current}] (expected [train] or [test])")
            continue
        if current is None:
            raise ConfigError(f"{path}:{number}: prompt before any [train] / [test] section")
        sections[current].append(line)
    return sections


def _load_prompt_file(folder: Path) -> tuple[dict[str, Any], Path] | None:
    found = [folder / name for name in PROMPT_FILES if (folder / name).is_file()]
    if not found:
        return None
    if len(found) > 1:
        raise ConfigError(f"{folder}: both {found[0].name} and {found[1].name} exist; keep one")
    path = found[0]
    if path.suffix == ".txt":
        return dict(read_prompts_txt(path)), path
    data = _read_mapping(path)
    unknown = sorted(set(data) - {"train", "test"})
    if unknown:
        raise ConfigError(f"{path}: key '{unknown[0]}': unknown key (expected 'train' and 'test')")
    return {
        "train": _check_prompt_list(data.get("train"), path, "train"),
        "test": _check_prompt_list(data.get("test"), path, "test"),
    }, path


def _check_value(path: Path, key: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"{path}: key '{key}': {message}")


def validate_spec(spec: StyleSpec, path: Path) -> None:
    """Range / choice checks that a type system cannot express; ConfigError naming ``path`` and the key."""
    _check_value(path, "name", is_safe_name(spec.name), f"{spec.name!r} is not a safe style name ({NAME_PATTERN.pattern})")
    _check_value(path, "generator", is_safe_name(spec.generator), f"{spec.generator!r} is not a generator short name")
    _check_value(path, "prompts.train", len(spec.prompts.train) >= 1, "at least one train prompt is required")
    _check_value(path, "prompts.test", len(spec.prompts.test) >= 1, "at least one test prompt is required")
    for kind in ("train", "test"):
        for i, prompt in enumerate(getattr(spec.prompts, kind)):
            _check_value(
                path, f"prompts.{kind}[{i}]", isinstance(prompt, str) and bool(prompt.strip()), "must be a non-empty string"
            )
    pairs = spec.pairs
    _check_value(path, "pairs.count", pairs.count >= 1, f"must be >= 1, got {pairs.count}")
    _check_value(path, "pairs.resolution", 8 <= pairs.resolution <= 4096, f"must be in [8, 4096], got {pairs.resolution}")
    _check_value(path, "pairs.seed", pairs.seed >= 0, f"must be >= 0, got {pairs.seed}")
    _check_value(path, "pairs.split", pairs.split in WORLD_SPLITS, f"must be one of {list(WORLD_SPLITS)}, got {pairs.split!r}")
    _check_value(
        path, "pairs.identity_offset", 0 <= pairs.identity_offset <= 900_000, f"must be in [0, 900000], got {pairs.identity_offset}"
    )
    _check_value(path, "pairs.image_fraction", 0.0 <= pairs.image_fraction <= 1.0, f"must be in [0, 1], got {pairs.image_fraction}")
    _check_value(path, "pairs.supersample", 1 <= pairs.supersample <= 8, f"must be in [1, 8], got {pairs.supersample}")
    pose = pairs.pose
    _check_value(path, "pairs.pose.kind", pose.kind in POSE_KINDS, f"must be one of {list(POSE_KINDS)}, got {pose.kind!r}")
    for key in ("yaw_std", "pitch_std", "yaw_limit", "pitch_limit"):
        value = getattr(pose, key)
        _check_value(path, f"pairs.pose.{key}", 0.0 <= value <= 3.2, f"must be in [0, 3.2] radians, got {value}")
    from pe3d.refinement import MAX_STRENGTH

    _check_value(path, "refine.strength", 0.0 <= spec.refine.strength <= MAX_STRENGTH,
                 f"must be in [0, {MAX_STRENGTH:g}] (the multiple of the photo's detail added to an edit), "
                 f"got {spec.refine.strength}")
    adapt = spec.adapt
    _check_value(path, "adapt.num_pairs", adapt.num_pairs >= 1, f"must be >= 1, got {adapt.num_pairs}")
    _check_value(path, "adapt.max_steps", adapt.max_steps >= 1, f"must be >= 1, got {adapt.max_steps}")
    _check_value(path, "adapt.lr", 0.0 < adapt.lr < 1.0, f"must be in (0, 1), got {adapt.lr}")
    _check_value(path, "adapt.batch_size", adapt.batch_size >= 1, f"must be >= 1, got {adapt.batch_size}")
    _check_value(path, "adapt.gradient_clip_norm", adapt.gradient_clip_norm >= 0,
                 f"must be >= 0 (0 = no clipping), got {adapt.gradient_clip_norm}")
    _check_value(path, "adapt.depth_weight", adapt.depth_weight >= 0, f"must be >= 0, got {adapt.depth_weight}")
    _check_value(path, "adapt.depth_source", adapt.depth_source in DEPTH_SOURCES,
                 f"must be one of {list(DEPTH_SOURCES)}, got {adapt.depth_source!r}")
    _check_value(
        path,
        "adapt.max_minutes",
        adapt.max_minutes is None or adapt.max_minutes > 0,
        f"must be > 0 or null, got {adapt.max_minutes}",
    )


def check_prompt_counts(spec: StyleSpec) -> list[str]:
    """Warnings (not errors) when a style departs from the paper's 8 train / 5 test prompts."""
    want_train, want_test = RECOMMENDED_PROMPTS
    notes = []
    if len(spec.prompts.train) != want_train:
        notes.append(f"style {spec.name!r}: {len(spec.prompts.train)} train prompts (paper: {want_train})")
    if len(spec.prompts.test) != want_test:
        notes.append(f"style {spec.name!r}: {len(spec.prompts.test)} test prompts (paper: {want_test})")
    overlap = set(spec.prompts.train) & set(spec.prompts.test)
    if overlap:
        notes.append(f"style {spec.name!r}: prompts in both train and test: {sorted(overlap)}")
    return notes


# ----------------------------------------------------------------------------- loading


def load_style(
    folder: str | Path,
    overrides: Sequence[str] = (),
    check_generator: bool = True,
) -> StyleSpec:
    """Load and validate ``<folder>/style.yaml``.

    Prompts come from the ``prompts`` section of ``style.yaml`` or, when absent, from
    ``prompts.yaml`` / ``prompts.txt`` in the folder (both at once is an error). A
    ``generator.py`` in the folder is imported first so it can register its generator.

    Args:
        folder: the style folder (its name is the style name).
        overrides: ``key=value`` strings merged last (e.g. ``pairs.count=10``).
        check_generator: also resolve ``generator`` in the registry and validate
            ``params`` against its ``Params`` schema.

    Returns:
        The validated :class:`StyleSpec` with ``folder`` set to the absolute folder path.

    Raises:
        ConfigError: naming the file and the key of the first problem.
    """
    folder = Path(folder).expanduser().absolute()
    path = folder / STYLE_FILE
    if not folder.is_dir():
        raise ConfigError(f"{folder}: style folder not found")
    if not path.is_file():
        raise ConfigError(f"{path}: style file not found")
    data = _read_mapping(path)
    if "folder" in data:
        raise ConfigError(f"{path}: key 'folder': set by the loader, not allowed in {STYLE_FILE}")
    if "prompts" in data and not isinstance(data["prompts"], Mapping):
        raise ConfigError(f"{path}: key 'prompts': expected a mapping with 'train' and 'test' lists")
    if isinstance(data.get("prompts"), Mapping):
        unknown = sorted(str(key) for key in data["prompts"] if key not in ("train", "test"))
        if unknown:
            raise ConfigError(f"{path}: key 'prompts.{unknown[0]}': unknown key (expected 'train' and 'test')")
        for kind in ("train", "test"):
            _check_prompt_list(data["prompts"].get(kind), path, f"prompts.{kind}")
    prompt_source = _load_prompt_file(folder)
    if prompt_source is not None:
        prompts, prompt_path = prompt_source
        if "prompts" in data:
            raise ConfigError(f"{path}: key 'prompts': prompts given both inline and in {prompt_path.name}; keep one")
        data["prompts"] = prompts
    data.setdefault("name", folder.name)
    try:
        spec = load_structured(StyleSpec, [data], overrides)
    except ConfigError as error:
        raise ConfigError(str(error).replace("source #0", str(path), 1)) from error
    except (TypeError, ValueError, KeyError, AttributeError) as error:  # defensive: never leak other types
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ConfigError(f"{path}: {type(error).__name__}: {detail}") from error
    validate_spec(spec, path)
    if spec.name != folder.name:
        raise ConfigError(f"{path}: key 'name': {spec.name!r} must match the folder name {folder.name!r}")
    if spec.reference:
        ref = Path(spec.reference)
        _check_value(path, "reference", not ref.is_absolute() and ".." not in ref.parts,
                     f"{spec.reference!r} must be a file inside the style folder")
        _check_value(path, "reference", (folder / ref).is_file(), f"{folder / ref}: file not found")
    spec = replace(spec, folder=str(folder))
    if check_generator:
        from pe3d.styles.registry import check_generator_params
        from pe3d.styles.discovery import import_style_plugin

        import_style_plugin(folder)
        check_generator_params(spec)
    return spec
