"""``pe3d edit`` on real photos end to end: alignment, outputs (PNG, GIF, MP4, depth maps, PLY), batch mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from pe3d.cli import main


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(path)
    return path


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a binary little-endian PLY of float xyz + uchar rgb vertices and uchar-count int faces."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"], header
    counts = {line.split()[1]: int(line.split()[2]) for line in header if line.startswith("element")}
    vertex_type = np.dtype([("xyz", "<f4", (3,)), ("rgb", "u1", (3,))])
    face_type = np.dtype([("count", "u1"), ("index", "<i4", (3,))])
    assert len(data) == end + counts["vertex"] * vertex_type.itemsize + counts["face"] * face_type.itemsize
    vertices = np.frombuffer(data, vertex_type, counts["vertex"], end)
    faces = np.frombuffer(data, face_type, counts["face"], end + counts["vertex"] * vertex_type.itemsize)
    assert (faces["count"] == 3).all()
    return vertices["xyz"], vertices["rgb"], faces["index"]


def test_edit_real_photo_writes_everything(astronaut_png, tmp_path, capsys):
    import imageio.v2 as imageio

    out = tmp_path / "out"
    args = ["edit", str(astronaut_png), "--style", "bronze_statue", "--out", str(out), "--views", "4", "--resolution", "32", "--mesh", "head.ply"]
    assert main(args) == 0, capsys.readouterr().err
    for name in ("input.png", "edited.png", "depth.png", "turntable.gif", "turntable.mp4", "portrait.json", "head.ply"):
        assert (out / name).is_file(), name
    assert Image.open(out / "edited.png").size == (32, 32)
    assert Image.open(out / "input.png").size == (256, 256)
    assert sorted(p.name for p in (out / "depth").iterdir()) == [f"view_{i:03d}.png" for i in range(4)]
    reader = imageio.get_reader(out / "turntable.mp4", format="FFMPEG")
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == 4 and frames[0].shape[0] >= 256 and frames[0].shape[1] == 3 * frames[0].shape[0]
    facts = json.loads((out / "portrait.json").read_text())
    assert facts["face_box"] == [175, 76, 265, 166] and abs(facts["yaw_deg"]) < 20 and len(facts["camera"]) == 25
    vertices, colors, faces = read_ply(out / "head.ply")
    assert len(vertices) > 500 and len(faces) > 1000 and faces.max() < len(vertices)
    assert np.abs(vertices).max() <= 0.5 + 1e-5  # inside the triplane cube [-0.5, 0.5]^3
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    assert (uses == 2).mean() > 0.99  # closed surface: every edge shared by two triangles
    assert colors.std() > 0  # vertex colours come from the decoder, not a constant


def test_mesh_of_a_world_head_is_closed_and_inside_the_box():
    import torch

    from pe3d.geometry import label_from_yaw_pitch
    from pe3d.pipeline import EditPipeline
    from pe3d.world import render_identity, sample_identity

    pipe = EditPipeline.from_pretrained()
    view = render_identity(sample_identity(0, 1_000_002), label_from_yaw_pitch([0.0], [0.0]), resolution=64).rgb
    triplane = pipe.editor.reconstruct(view)
    mesh = pipe.mesh(triplane[0], resolution=64)
    assert mesh.boundary_edge_fraction() == 0.0 and mesh.volume() > 0
    low, high = mesh.vertices.min(0), mesh.vertices.max(0)
    assert (low >= -0.5).all() and (high <= 0.5).all()
    # a head: about 0.25-0.6 wide, taller than the face alone, centred near x = 0
    assert 0.2 < high[0] - low[0] < 0.8 and high[1] - low[1] > 0.3 and abs(high[0] + low[0]) < 0.1
    with pytest.raises(ValueError, match="no density above the mesh level"):
        pipe.mesh(torch.zeros_like(triplane[0]) - 10.0, resolution=16, level=1e6)


def test_two_faces_need_face_option(astronaut_png, tmp_path, capsys):
    pair = np.concatenate([skimage_data.astronaut()] * 2, axis=1)
    photo = tmp_path / "pair.png"
    Image.fromarray(pair).save(photo)
    assert main(["edit", str(photo), "--prompt", "x", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pair.png: found 2 faces" in err and "--face largest" in err
    assert main(["edit", str(photo), "--prompt-image", str(astronaut_png), "--out", str(tmp_path / "o"), "--face", "1",
                 "--views", "2", "--resolution", "16", "--strength", "0.5"]) == 0
    assert json.loads((tmp_path / "o" / "portrait.json").read_text())["face_box"][0] >= 512
    assert main(["edit", str(photo), "--prompt", "x", "--out", str(tmp_path / "o"), "--face", "left"]) == 2
    assert "--face must be 'largest' or an integer index" in capsys.readouterr().err


def test_batch_folder_skips_bad_photos_and_summarises(astronaut_png, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "astronaut.png").write_bytes(astronaut_png.read_bytes())
    Image.fromarray(np.full((80, 80, 3), 200, np.uint8)).save(folder / "wall.png")
    (folder / "notes.txt").write_text("not a photo")  # ignored: not an image suffix
    out = tmp_path / "out"
    code = main(["edit", str(folder), "--prompt", "a bronze statue", "--out", str(out), "--views", "2", "--resolution", "16"])
    captured = capsys.readouterr()
    assert code == 1
    assert "edited 1 of 2 photos (1 failed)" in captured.out
    assert "wall.png: no face found" in captured.out and "--no-align" in captured.out
    assert (out / "astronaut" / "edited.png").is_file() and (out / "astronaut" / "turntable.mp4").is_file()
    assert not (out / "wall").exists()
    assert main(["edit", str(tmp_path / "out"), "--prompt", "x", "--out", str(tmp_path / "o2")]) == 2
    assert "no image files" in capsys.readouterr().err
