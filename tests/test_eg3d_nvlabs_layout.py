"""The EG3D importer against a network pickle written from NVlabs' source rules alone
(``tests/nvlabs_pickle.py`` imports nothing of pe3d): every tensor lands under its NVlabs name,
the hard-coded sizes are read back, and the imported generator renders."""

from pathlib import Path

import torch

from nvlabs_pickle import TINY_G_KWARGS, TINY_SIZES, nvlabs_tiny_generator, write_nvlabs_pickle
from pe3d.eg3d.importer import import_eg3d, load_eg3d
from pe3d.geometry import label_from_yaw_pitch


def test_the_builder_is_independent_of_pe3d():
    source = (Path(__file__).parent / "nvlabs_pickle.py").read_text()
    assert "import pe3d" not in source and "from pe3d" not in source


def test_a_pickle_laid_out_by_nvlabs_rules_imports_tensor_for_tensor(tmp_path):
    root = nvlabs_tiny_generator(seed=3)
    expected = root.tensors()
    generator = load_eg3d(import_eg3d(write_nvlabs_pickle(root, tmp_path / "tiny.pkl"), tmp_path / "tiny.safetensors"))
    state = generator.state_dict()
    assert sorted(set(state) - set(expected)) == [] and sorted(set(expected) - set(state)) == []
    assert [k for k, v in expected.items() if not torch.equal(state[k], v.float())] == []
    cfg = generator.cfg
    assert (cfg.triplane_resolution, cfg.triplane_channels, list(cfg.sr_channels), cfg.sr_input_resolution) == (
        TINY_SIZES["triplane_resolution"], TINY_SIZES["triplane_channels"], list(TINY_SIZES["sr_channels"]),
        TINY_SIZES["sr_input_resolution"])
    assert (cfg.decoder_hidden_dim, cfg.decoder_output_dim, cfg.neural_rendering_resolution) == (
        TINY_SIZES["decoder_hidden_dim"], TINY_SIZES["decoder_output_dim"], TINY_SIZES["neural_rendering_resolution"])
    assert (cfg.z_dim, cfg.w_dim, cfg.channel_base, cfg.channel_max, cfg.mapping.num_layers) == (
        TINY_G_KWARGS["z_dim"], TINY_G_KWARGS["w_dim"], TINY_G_KWARGS["channel_base"], TINY_G_KWARGS["channel_max"], 2)
    camera = label_from_yaw_pitch([0.3], [0.1])
    with torch.no_grad():
        out = generator(torch.randn(1, TINY_G_KWARGS["z_dim"], generator=torch.Generator().manual_seed(0)), camera, noise_mode="const")
    side = TINY_G_KWARGS["img_resolution"]
    assert out.image.shape == (1, 3, side, side) and torch.isfinite(out.image).all()
    assert out.planes.shape[-3:] == (TINY_SIZES["triplane_channels"], TINY_SIZES["triplane_resolution"], TINY_SIZES["triplane_resolution"])
