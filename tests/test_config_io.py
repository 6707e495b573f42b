from dataclasses import dataclass, field

import pytest
import torch

from pe3d.config import ConfigError, load_structured, parse_overrides
from pe3d.io import CorruptFileError, atomic_write_text, load_tensors, save_tensors, state_dict_hash


@dataclass
class Inner:
    size: int = 4
    name: str = "x"


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.1


def test_merge_order_yaml_then_overrides(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("inner:\n  size: 8\nrate: 0.5\n")
    cfg = load_structured(Outer, [path], ["inner.name=y"])
    assert isinstance(cfg, Outer) and cfg.inner.size == 8 and cfg.inner.name == "y" and cfg.rate == 0.5


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  sise: 8\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*inner\.sise"):
        load_structured(Outer, [path])


def test_wrong_type_names_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  size: many\n")
    with pytest.raises(ConfigError, match=r"inner\.size"):
        load_structured(Outer, [path])


def test_bad_override_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])
    with pytest.raises(ConfigError, match="overrides"):
        parse_overrides(["0=\x1f"])  # found by Hypothesis: control characters are not YAML
    path = tmp_path / "broken.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_structured(Outer, [path])
    with pytest.raises(ConfigError, match="not found"):
        load_structured(Outer, [tmp_path / "missing.yaml"])


def test_safetensors_roundtrip_and_metadata(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    path = save_tensors(tmp_path / "t.safetensors", tensors, {"kind": "test", "n": 3})
    loaded, meta = load_tensors(path)
    assert torch.equal(loaded["a"], tensors["a"]) and meta == {"kind": "test", "n": "3"}
    assert state_dict_hash(loaded) == state_dict_hash(tensors)
    assert state_dict_hash({"a": tensors["a"] + 1, "b": tensors["b"]}) != state_dict_hash(tensors)


def test_truncated_and_garbage_files_are_detected(tmp_path):
    path = save_tensors(tmp_path / "t.safetensors", {"a": torch.randn(64, 64)})
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_tensors(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 100)
    with pytest.raises(CorruptFileError, match="header"):
        load_tensors(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        load_tensors(tmp_path / "none.safetensors")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["inner", "rate", "size", "inner.size", "x"]), _values, max_size=3))
def test_random_sources_load_or_raise_config_error(source):
    try:
        cfg = load_structured(Outer, [source])
    except ConfigError:
        return
    assert isinstance(cfg, Outer) and isinstance(cfg.inner.size, int)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=3))
def test_random_overrides_load_or_raise_config_error(overrides):
    try:
        load_structured(Outer, [], overrides)
    except ConfigError:
        pass
