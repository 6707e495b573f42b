"""The EG3D importer: fabricated NVlabs-layout files import key-for-key; malicious pickles are refused unrun."""

import pickle

import pytest
import torch

from eg3d_helpers import (
    malicious_converted, malicious_persistent_pickle, malicious_reduce_pickle, run_module_src_like_nvlabs, write_converted, write_network_pickle,
)
from pe3d.cli import main
from pe3d.eg3d import TriPlaneGenerator, load_eg3d_config
from pe3d.eg3d.importer import EG3DImportError, import_eg3d, load_eg3d
from pe3d.eg3d.safe_pickle import UnsafePickleError
from pe3d.geometry import label_from_yaw_pitch
from pe3d.io import CorruptFileError, load_tensors

# The globals of a network pickle written by NVlabs' own code (EG3D's training loop, torch 2.x, numpy 2.x).
NVLABS_PICKLE_GLOBALS = {
    ("collections", "OrderedDict"), ("dnnlib.util", "EasyDict"), ("numpy", "dtype"), ("numpy._core.multiarray", "scalar"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_tensor_v2"), ("torch.storage", "_load_from_bytes"),
    ("torch.nn.modules.activation", "Softplus"), ("torch.nn.modules.container", "Sequential"),
    ("torch_utils.persistence", "_reconstruct_persistent_obj"), ("training.triplane", "OSGDecoder"),
    ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2"), ("training.volumetric_rendering.ray_sampler", "RaySampler"),
    ("training.volumetric_rendering.renderer", "ImportanceRenderer"),
}


class _Inert:
    """Stands in for every global while listing them: accepts any construction, state or items."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass


def pickle_globals(path) -> set[tuple[str, str]]:
    """``(module, name)`` of every global a pickle references (nothing is called)."""
    found = set()

    class Lister(pickle.Unpickler):
        def find_class(self, module, name):
            found.add((module, name))
            return _Inert

    with open(path, "rb") as handle:
        Lister(handle).load()
    return found


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    g = TriPlaneGenerator(load_eg3d_config("tiny")).eval()
    with torch.no_grad():  # non-default values everywhere, so a mix-up of tensors shows
        for name, value in g.state_dict().items():
            if name.endswith(("noise_strength", "bias", "w_avg")):
                value.normal_(0.0, 0.1)
    return g


def _same_generator(a: TriPlaneGenerator, b: TriPlaneGenerator) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    z, label = torch.randn(2, 32), label_from_yaw_pitch([0.25, -0.1], [0.0, 0.15])
    with torch.no_grad():
        torch.manual_seed(3)
        out_a = a(z, label, truncation_psi=0.7, noise_mode="const")
        torch.manual_seed(3)
        out_b = b(z, label, truncation_psi=0.7, noise_mode="const")
    assert torch.equal(out_a.image, out_b.image) and torch.equal(out_a.image_depth, out_b.image_depth)


def test_network_pickle_in_nvlabs_layout_imports_key_for_key(tiny, tmp_path):
    source = write_network_pickle(tiny, tmp_path / "tiny.pkl")
    assert pickle_globals(source) == NVLABS_PICKLE_GLOBALS
    out = import_eg3d(source, tmp_path / "tiny.safetensors")
    tensors, meta = load_tensors(out)
    assert meta["kind"] == "pe3d-eg3d" and meta["source_format"] == "network-pickle" and meta["source"] == "tiny.pkl"
    assert tensors.keys() == tiny.state_dict().keys()
    imported = load_eg3d(out)
    assert imported.cfg == tiny.cfg
    _same_generator(tiny, imported)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_converted_torch_file_imports(tiny, tmp_path, zip_format, monkeypatch):
    if not zip_format:
        original = torch.save
        monkeypatch.setattr(torch, "save", lambda obj, f: original(obj, f, _use_new_zipfile_serialization=False))
    source = write_converted(tiny, tmp_path / "tiny.pth")
    monkeypatch.undo()
    imported = load_eg3d(import_eg3d(source, tmp_path / "tiny.safetensors"))
    assert load_tensors(tmp_path / "tiny.safetensors")[1]["source_format"] == "converted-torch"
    _same_generator(tiny, imported)


@pytest.mark.parametrize("kind, name", [("exec", "builtins.exec"), ("os.system", ".system"), ("subprocess", "subprocess.call")])
def test_malicious_pickle_is_refused_without_running(tmp_path, kind, name):
    control = malicious_reduce_pickle(tmp_path / "control.pkl", tmp_path / "control-ran", kind)
    with open(control, "rb") as handle:
        pickle.load(handle)  # positive control: an ordinary unpickler runs the payload
    assert (tmp_path / "control-ran").exists()
    marker = tmp_path / "payload-ran"
    evil = malicious_reduce_pickle(tmp_path / "evil.pkl", marker, kind)
    with pytest.raises(UnsafePickleError, match=name):
        import_eg3d(evil, tmp_path / "out.safetensors")
    assert not marker.exists()
    assert main(["import-eg3d", str(evil), str(tmp_path / "out.safetensors")]) == 2
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_malicious_converted_torch_file_is_refused_by_weights_only(tmp_path):
    marker = tmp_path / "payload-ran"
    with pytest.raises(UnsafePickleError, match=r"weights_only=True\): it references \S+\.call"):  # pickle may spell it commands.call
        import_eg3d(malicious_converted(tmp_path / "evil.pth", marker), tmp_path / "out.safetensors")
    assert not marker.exists()


def test_persistent_object_source_is_never_executed(tmp_path):
    run_module_src_like_nvlabs(malicious_persistent_pickle(tmp_path / "control.pkl", tmp_path / "control-ran"))
    assert (tmp_path / "control-ran").exists()  # NVlabs' loader would have run it
    marker = tmp_path / "payload-ran"
    with pytest.raises(EG3DImportError, match="no backbone.synthesis blocks"):  # recorded, not executed: it just has no weights
        import_eg3d(malicious_persistent_pickle(tmp_path / "a.pkl", marker), tmp_path / "a.safetensors")
    with pytest.raises(UnsafePickleError, match="'Evil' is not an EG3D class"):
        import_eg3d(malicious_persistent_pickle(tmp_path / "b.pkl", marker, class_name="Evil"), tmp_path / "b.safetensors")
    assert not marker.exists()


def test_truncated_or_incomplete_checkpoints_give_clear_errors(tiny, tmp_path):
    source = write_network_pickle(tiny, tmp_path / "tiny.pkl")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match="truncated.pkl"):
        import_eg3d(truncated, tmp_path / "out.safetensors")
    state = tiny.state_dict()
    del state["backbone.synthesis.b8.conv0.affine.weight"]
    converted = write_converted(tiny, tmp_path / "tiny.pth", state={**state, "decoder.extra": torch.zeros(1)})
    with pytest.raises(EG3DImportError, match=r"missing \['backbone.synthesis.b8.conv0.affine.weight'\].*unexpected \['decoder.extra'\]"):
        import_eg3d(converted, tmp_path / "out.safetensors")
