"""Style plugins: discovery, validation errors, generator registry, plugin generators."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from pe3d.config import ConfigError
from pe3d.styles import (
    Pair,
    StyleError,
    StyleSpec,
    build_generator,
    check_prompt_counts,
    discover_styles,
    find_style,
    generator_names,
    get_generator,
    load_named_style,
    load_style,
    unregister_generator,
)
from pe3d.styles import discovery

SHIPPED = ["anime_eyes", "blue_hair", "bronze_statue", "golden_statue", "marble_statue", "pencil_sketch", "pop_art", "zombie"]

from style_helpers import PLUGIN, TEST, TRAIN  # noqa: E402


@pytest.fixture(autouse=True)
def _no_env_styles(monkeypatch):
    monkeypatch.delenv("PE3D_STYLE_PATH", raising=False)
    monkeypatch.delenv("PE3D_STYLES", raising=False)


def write_style(folder: Path, data: dict, prompts: str = "inline") -> Path:
    """Make a style folder; ``prompts``: inline (in style.yaml), yaml, txt or none."""
    folder.mkdir(parents=True, exist_ok=True)
    data = dict(data)
    if prompts == "inline":
        data.setdefault("prompts", {"train": TRAIN, "test": TEST})
    elif prompts == "yaml":
        (folder / "prompts.yaml").write_text(yaml.safe_dump({"train": TRAIN, "test": TEST}))
    elif prompts == "txt":
        text = "# my prompts\n[train]\n" + "\n".join(TRAIN) + "\n\n[test]\n" + "\n".join(TEST) + "\n"
        (folder / "prompts.txt").write_text(text)
    (folder / "style.yaml").write_text(yaml.safe_dump(data))
    return folder


def plugin_style(folder: Path, **extra) -> tuple[Path, str]:
    """A style folder with its own generator.py; returns (folder, generator name)."""
    gname = f"tiny-{uuid.uuid4().hex[:8]}"
    write_style(folder, {"generator": gname, "params": {"shift": 0.5}, **extra})
    (folder / "generator.py").write_text(PLUGIN.replace("{gname}", gname))
    return folder, gname


def make_image_folder(root: Path, names: list[str], size: int = 20) -> None:
    for sub, value in (("before", 60), ("after", 200)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            Image.new("RGB", (size + 4, size), (value, k * 30, 90)).save(root / sub / f"{name}.png")


# ----------------------------------------------------------------------------- shipped styles


def test_shipped_styles_are_discovered_and_load():
    styles = discover_styles(entry_points=False)
    for name in SHIPPED:
        assert name in styles, f"{name} not discovered in {sorted(styles)}"
        spec = load_style(styles[name])
        assert spec.name == name and spec.folder == str(styles[name])
        assert len(spec.prompts.train) == 8 and len(spec.prompts.test) == 5
        assert not check_prompt_counts(spec)
        assert spec.generator == "filter" and spec.params["filter"] == name
        assert spec.adapt.num_pairs == 10
    assert (Path(next(iter(styles.values()))).parent / "README.md").is_file()


def test_load_named_style_and_overrides():
    spec = load_named_style("bronze_statue", entry_points=False, overrides=["pairs.count=7", "pairs.resolution=32"])
    assert (spec.pairs.count, spec.pairs.resolution) == (7, 32)
    with pytest.raises(ConfigError, match="pairs.resolution"):
        load_named_style("bronze_statue", entry_points=False, overrides=["pairs.resolution=huge"])


# ----------------------------------------------------------------------------- hand-written styles


@pytest.mark.parametrize("prompts", ["inline", "yaml", "txt"])
def test_handwritten_style_in_extra_dir(tmp_path, prompts):
    images = tmp_path / "mine" / "sketchy" / "examples"
    make_image_folder(images, ["a", "b", "c"])
    (images / "cameras.json").write_text(json.dumps({"labels": [["a.png", [0.5] * 25]]}))
    write_style(
        tmp_path / "mine" / "sketchy",
        {"description": "my own pairs", "generator": "folder", "params": {"dir": "examples"}, "pairs": {"resolution": 16}},
        prompts=prompts,
    )
    styles = discover_styles([tmp_path / "mine"], entry_points=False)
    assert "sketchy" in styles and "bronze_statue" in styles
    assert find_style("sketchy", [tmp_path / "mine"], entry_points=False) == (tmp_path / "mine" / "sketchy").resolve()
    spec = load_named_style("sketchy", [tmp_path / "mine"], entry_points=False)
    assert spec.prompts.train == TRAIN and spec.prompts.test == TEST
    generator = build_generator(spec)
    assert generator.max_pairs() == 3
    pairs = generator.generate([0, 1, 2])
    assert [p.input.shape for p in pairs] == [(3, 16, 16)] * 3
    assert torch.allclose(pairs[0].camera, torch.full((25,), 0.5))  # from cameras.json
    assert pairs[1].camera.shape == (25,) and not torch.allclose(pairs[1].camera, torch.full((25,), 0.5))  # frontal
    assert pairs[0].edited.mean() > pairs[0].input.mean()  # after images are brighter
    assert all(p.prompt in TRAIN for p in pairs)


def test_folder_generator_reports_unmatched_files(tmp_path):
    images = tmp_path / "s" / "ex"
    make_image_folder(images, ["a", "b"])
    (images / "after" / "b.png").unlink()
    write_style(tmp_path / "s", {"generator": "folder", "params": {"dir": "ex"}})
    with pytest.raises(ConfigError, match=r"style\.yaml: key 'params\.dir': 'b' has no match"):
        load_style(tmp_path / "s")


def test_folder_params_may_not_escape_style_folder(tmp_path):
    make_image_folder(tmp_path / "outside", ["a"])
    write_style(tmp_path / "s", {"generator": "folder", "params": {"dir": "../outside"}})
    with pytest.raises(ConfigError, match="params.dir.*escapes"):
        load_style(tmp_path / "s")
    write_style(tmp_path / "t", {"generator": "folder", "params": {"dir": str(tmp_path / "outside")}})
    assert load_style(tmp_path / "t").params["dir"] == str(tmp_path / "outside")  # absolute is explicit


def test_style_with_its_own_generator(tmp_path):
    folder, gname = plugin_style(tmp_path / "plugins" / "noisy", pairs={"resolution": 12, "image_fraction": 1.0})
    try:
        assert gname not in generator_names()
        spec = load_named_style("noisy", [tmp_path / "plugins"], entry_points=False)
        assert gname in generator_names()
        assert get_generator(gname).__name__ == "TinyGenerator"
        pairs = build_generator(spec).generate([3, 4])
        assert all(isinstance(p, Pair) and p.prompt_kind == "image" for p in pairs)
        assert pairs[0].input.shape == (3, 12, 12)
        again = build_generator(spec).generate([3])[0]
        assert torch.equal(again.input, pairs[0].input)  # deterministic per index
        load_style(folder)  # importing the plugin twice is fine
        with pytest.raises(ConfigError, match=r"key 'params\.shift'"):
            load_style(folder, overrides=["params.shift=abc"])
        with pytest.raises(ConfigError, match=r"key 'params\.bogus'"):
            load_style(folder, overrides=["params.bogus=1"])
    finally:
        unregister_generator(gname)


def test_broken_plugin_names_its_file(tmp_path):
    folder = write_style(tmp_path / "broken", {"generator": "filter", "params": {"filter": "bronze_statue"}})
    (folder / "generator.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(StyleError, match=r"generator\.py.*boom"):
        load_style(folder)


def test_entry_point_styles(tmp_path, monkeypatch):
    write_style(tmp_path / "pkg" / "ep_style", {"generator": "filter", "params": {"filter": "bronze_statue"}})
    write_style(tmp_path / "single", {"generator": "filter", "params": {"filter": "bronze_statue"}})
    points = [
        SimpleNamespace(name="coll", value="pkg:styles", load=lambda: (lambda: str(tmp_path / "pkg"))),
        SimpleNamespace(name="one", value="pkg:single", load=lambda: tmp_path / "single"),
    ]
    seen_groups = []

    def fake_entry_points(group):
        seen_groups.append(group)
        return points

    monkeypatch.setattr(discovery.importlib.metadata, "entry_points", fake_entry_points)
    styles = discover_styles()
    assert seen_groups == ["pe3d.styles"]
    assert styles["ep_style"] == (tmp_path / "pkg" / "ep_style").resolve()
    assert styles["single"] == (tmp_path / "single").resolve()
    points.append(SimpleNamespace(name="bad", value="x:y", load=lambda: 42))
    with pytest.raises(StyleError, match="entry point 'bad'.*folder path"):
        discover_styles()


# ----------------------------------------------------------------------------- errors


def _error(tmp_path: Path, data: dict, name: str = "bad", prompts: str = "inline") -> str:
    folder = write_style(tmp_path / name, data, prompts=prompts)
    with pytest.raises(ConfigError) as info:
        load_style(folder)
    message = str(info.value)
    assert str(folder / "style.yaml") in message or str(folder) in message, message
    assert "\n" not in message
    return message


def test_validation_errors_name_file_and_field(tmp_path):
    base = {"generator": "filter", "params": {"filter": "bronze_statue"}}
    assert "key 'pairs.resolution'" in _error(tmp_path, {**base, "pairs": {"resolution": "big"}})
    assert "key 'pairs.colour'" in _error(tmp_path, {**base, "pairs": {"colour": 3}})
    assert "key 'colour'" in _error(tmp_path, {**base, "colour": 3})
    assert "key 'name'" in _error(tmp_path, {**base, "name": "Bad Name"})
    assert "must match the folder name" in _error(tmp_path, {**base, "name": "other"})
    assert "key 'prompts.train'" in _error(tmp_path, {**base, "prompts": {"train": [], "test": TEST}})
    assert "key 'prompts.test[0]'" in _error(tmp_path, {**base, "prompts": {"train": TRAIN, "test": [{"a": 1}]}})
    assert "key 'pairs.pose.kind'" in _error(tmp_path, {**base, "pairs": {"pose": {"kind": "orbit"}}})
    assert "key 'adapt.lr'" in _error(tmp_path, {**base, "adapt": {"lr": -1.0}})
    assert "key 'adapt.depth_source'" in _error(tmp_path, {**base, "adapt": {"depth_source": "shape"}})
    assert "key 'adapt.depth_weight'" in _error(tmp_path, {**base, "adapt": {"depth_weight": -1.0}})
    assert "key 'adapt.gradient_clip_norm'" in _error(tmp_path, {**base, "adapt": {"gradient_clip_norm": -0.1}})
    assert "key 'refine.strength'" in _error(tmp_path, {**base, "refine": {"strength": -0.5}})
    assert "key 'refine.strength'" in _error(tmp_path, {**base, "refine": {"strength": 2.5}})
    assert "key 'folder'" in _error(tmp_path, {**base, "folder": "/tmp"})
    message = _error(tmp_path, {"generator": "nope"})
    assert "key 'generator'" in message and "filter" in message and "folder" in message
    assert "key 'params.filter'" in _error(tmp_path, {"generator": "filter", "params": {"filter": "nope"}})
    assert "key 'params.source'" in _error(tmp_path, {**base, "params": {"filter": "bronze_statue", "source": "web"}})


def test_prompt_file_conflicts_and_errors(tmp_path):
    base = {"generator": "filter", "params": {"filter": "bronze_statue"}}
    folder = write_style(tmp_path / "both", base, prompts="yaml")
    (folder / "style.yaml").write_text(yaml.safe_dump({**base, "prompts": {"train": TRAIN, "test": TEST}}))
    with pytest.raises(ConfigError, match="both inline and in prompts.yaml"):
        load_style(folder)
    folder = write_style(tmp_path / "txt", base, prompts="txt")
    (folder / "prompts.txt").write_text("orphan prompt\n[train]\na\n")
    with pytest.raises(ConfigError, match=r"prompts\.txt:1"):
        load_style(folder)
    (folder / "style.yaml").write_text("generator: [unclosed\n")
    with pytest.raises(ConfigError, match=r"style\.yaml: not valid YAML"):
        load_style(folder)


def test_unknown_generator_lists_known_names():
    with pytest.raises(StyleError, match=r"unknown pair generator 'nope' \(known: .*filter.*folder"):
        get_generator("nope")


def test_duplicate_style_names_name_both_folders(tmp_path):
    base = {"generator": "filter", "params": {"filter": "bronze_statue"}}
    write_style(tmp_path / "a" / "twin", base)
    write_style(tmp_path / "b" / "twin", base)
    with pytest.raises(StyleError) as info:
        discover_styles([tmp_path / "a", tmp_path / "b"], entry_points=False)
    message = str(info.value)
    assert "duplicate style 'twin'" in message
    assert str((tmp_path / "a" / "twin").resolve()) in message and str((tmp_path / "b" / "twin").resolve()) in message
    # the same folder reached twice is not a duplicate
    assert "twin" in discover_styles([tmp_path / "a", tmp_path / "a"], entry_points=False)
    # a shipped name reused elsewhere is a duplicate too
    write_style(tmp_path / "c" / "bronze_statue", base)
    with pytest.raises(StyleError, match="duplicate style 'bronze_statue'"):
        discover_styles([tmp_path / "c"], entry_points=False)


@pytest.mark.parametrize("ref", ["../secret", "..", "/etc", "/etc/passwd", "a/b", "a\\b", "~root", "bronze_statue/..", "", "Bronze"])
def test_style_references_cannot_escape(ref):
    with pytest.raises(StyleError):
        find_style(ref, entry_points=False)


def test_unknown_style_lists_known():
    with pytest.raises(StyleError, match=r"unknown style 'nope' \(known: .*bronze_statue"):
        find_style("nope", entry_points=False)


# ----------------------------------------------------------------------------- property test

_keys = st.sampled_from(
    ["name", "description", "generator", "params", "prompts", "image_prompts", "pairs", "adapt", "train", "test",
     "count", "resolution", "seed", "pose", "kind", "filter", "source", "lr", "folder", "x"]
)
_scalars = st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=True) | st.text(max_size=12)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys | st.text(max_size=5), inner, max_size=4), max_leaves=12)
_style_dicts = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["prop", "other", "Bad!"]) | st.text(max_size=6),
        "generator": st.sampled_from(["filter", "folder", "nope"]) | _values,
        "params": st.fixed_dictionaries({}, optional={"filter": st.sampled_from(["bronze_statue", "zzz"]), "source": _values, "dir": _values}) | _values,
        "prompts": st.fixed_dictionaries({}, optional={"train": st.lists(st.text(max_size=8), max_size=3) | _values, "test": st.lists(st.text(max_size=8), max_size=3) | _values}) | _values,
        "pairs": st.dictionaries(_keys, _values, max_size=4) | _values,
        "adapt": st.dictionaries(_keys, _values, max_size=3) | _values,
        "image_prompts": _values,
        "x": _values,
    },
)


_VALID = {"generator": "filter", "params": {"filter": "bronze_statue"}, "prompts": {"train": ["a"], "test": ["b"]}}
_paths = st.sampled_from(
    [("pairs", "resolution"), ("pairs", "count"), ("pairs", "pose", "kind"), ("pairs", "pose", "yaw_std"), ("pairs", "split"),
     ("pairs", "image_fraction"), ("adapt", "lr"), ("adapt", "max_minutes"), ("adapt", "num_pairs"), ("image_prompts",),
     ("description",), ("params", "source"), ("params", "extra"), ("prompts", "train"), ("prompts", "test", "x"), ("name",), ("zz",)]
)


@st.composite
def _mutated_valid(draw):
    """A valid style with one key set to a random value (so many examples load)."""
    data = json.loads(json.dumps(_VALID))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        path = draw(_paths)
        node = data
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = draw(st.sampled_from([True, 1, 16, 0.5, "ffhq", "train", "x", None, [], ["p"]]) | _values)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(_style_dicts, _mutated_valid(), _mutated_valid(), st.just(_VALID)), raw=st.one_of(st.none(), st.none(), st.none(), st.text(max_size=40)))
def test_random_style_files_load_or_raise_config_error(data, raw):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "prop"
        folder.mkdir()
        text = raw if raw is not None else yaml.safe_dump(data, allow_unicode=True)
        (folder / "style.yaml").write_text(text, encoding="utf-8")
        try:
            spec = load_style(folder)
        except ConfigError as error:
            event("ConfigError")
            assert str(error)
        else:
            event("loaded")
            assert isinstance(spec, StyleSpec) and spec.name == "prop"
            assert spec.prompts.train and spec.prompts.test


def test_filter_generator_on_a_folder_of_portraits(tmp_path):
    """``filter`` with ``source: folder`` edits arbitrary portraits (no part masks)."""
    make_image_folder(tmp_path / "s" / "faces", ["p1", "p2", "p3"], size=24)
    write_style(
        tmp_path / "s",
        {"generator": "filter", "params": {"filter": "pencil_sketch", "source": "folder", "dir": "faces/before"},
         "pairs": {"resolution": 16, "image_fraction": 1.0}},
    )
    (tmp_path / "s" / "faces" / "before" / "cameras.json").write_text(json.dumps({"p2": [0.25] * 25}))
    generator = build_generator(load_style(tmp_path / "s"))
    assert generator.max_pairs() == 3
    pairs = generator.generate([0, 1, 2])
    assert all(p.input.shape == p.edited.shape == p.reference.shape == (3, 16, 16) for p in pairs)
    assert torch.allclose(pairs[1].camera, torch.full((25,), 0.25))
    assert all(p.identity == -1 and not torch.equal(p.input, p.edited) for p in pairs)
    with pytest.raises(IndexError):
        generator.generate([3])


def test_filter_generator_paints_a_textured_background_the_filter_keeps(tmp_path):
    """``background_texture: 1``: world pairs on a textured wall; the head edit is the same and
    the filter leaves the background as it is; ``0`` (the default) changes nothing."""
    base = {"generator": "filter", "params": {"filter": "zombie"}, "pairs": {"resolution": 24, "image_fraction": 0.0}}
    write_style(tmp_path / "plain", base)
    write_style(tmp_path / "walls", {**base, "params": {"filter": "zombie", "background_texture": 1.0}})
    plain = build_generator(load_style(tmp_path / "plain")).generate([0, 1])
    walls = build_generator(load_style(tmp_path / "walls")).generate([0, 1])
    for a, b in zip(plain, walls):
        background = (a.input == 1.0).all(dim=0)  # the world's white background
        assert background.float().mean() > 0.2
        head = ~background
        assert torch.equal(a.input[:, head], b.input[:, head])
        assert b.input[:, background].std(dim=1).mean() > 0.01  # textured, not flat
        assert torch.equal(b.edited[:, background], b.input[:, background])  # the filter keeps it
        assert torch.allclose(a.edited[:, head], b.edited[:, head], atol=1e-6)
    write_style(tmp_path / "bad", {**base, "params": {"filter": "zombie", "background_texture": 1.5}})
    with pytest.raises(Exception, match="background_texture"):
        build_generator(load_style(tmp_path / "bad"))


def test_mini_wall_matches_the_mini_model_config():
    from pe3d.data.backgrounds import MINI_WALL
    from pe3d.models.prior import model_config_from_yaml

    ray_march = model_config_from_yaml(Path(__file__).resolve().parents[1] / "configs" / "model" / "mini.yaml").renderer.ray_march
    assert (MINI_WALL.box_warp, MINI_WALL.ray_end) == (ray_march.box_warp, ray_march.ray_end)


def test_distillation_anchor_style_keeps_the_input():
    """configs/distill/anchor_styles/keep (the reconstruction anchor that distillation can mix in, found through
    ``style_dirs``): its pairs' edited image is the input itself, and it is not one of the styles users see."""
    from pe3d.recipes.editing import style_search_dirs

    spec = load_named_style("keep", style_search_dirs(["configs/distill/anchor_styles"]))
    pairs = build_generator(spec).generate([0, 1])
    for pair in pairs:
        assert torch.equal(pair.edited, pair.input) and pair.prompt in spec.prompts.train
    assert "keep" not in discovery.discover_styles()
