"""`nsr mesh` as a user runs it: the format by suffix or --format, vertex colours, one-line refusals, progress.

In-process (`nsr.cli.mesh.run`) on run folders whose model is a sphere of known radius and colour."""

from __future__ import annotations

import re

import numpy as np
import pytest
import trimesh

from conftest import make_run
from nsr.cli.mesh import run as nsr_mesh

COLOUR = (0.2, 0.3, 0.9)


def sphere_run(scene, run_dir, radius):
    """A run folder whose SDF is a sphere of `radius` (untrained) and whose colour is COLOUR everywhere."""
    return make_run(scene, run_dir, radius=radius, colour=COLOUR)


def mesh(argv, capsys):
    code = nsr_mesh([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err, *words) -> None:
    """Exit code 1 and one `nsr: error:` line, the last (progress bars and what training logged may come
    before it)."""
    lines = [line for line in err.strip().splitlines() if line.startswith("nsr: error")]
    assert code == 1 and len(lines) == 1 and err.strip().endswith(lines[0]), err
    assert lines[0].startswith("nsr: error:")
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def ball_run(tiny_scene, tmp_path_factory):
    return sphere_run(tiny_scene, tmp_path_factory.mktemp("mesh_cli") / "ball", radius=0.6)


def test_obj_by_suffix_with_vertex_colours_and_the_memory_estimate(ball_run, tmp_path, capsys) -> None:
    code, out, err = mesh([ball_run, "--resolution", 40, "--out", tmp_path / "m.obj", "--vertex-colors",
                           "--device", "cpu"], capsys)  # fmt: skip
    assert code == 0, err
    assert re.search(r"marching cubes at 40\^3 in \d+ blocks? of \d+\^3 cells: ~[\d.]+ [MG]B peak", out)
    assert "depth maps of the training views" in err  # --color-view cameras traced the training views
    text = (tmp_path / "m.obj").read_text()
    assert text.startswith("#") and "\nf " in text
    loaded = trimesh.load(tmp_path / "m.obj", process=False, force="mesh")
    assert loaded.visual.kind == "vertex"
    np.testing.assert_allclose(loaded.visual.vertex_colors[:, :3] / 255, np.tile(COLOUR, (len(loaded.vertices), 1)),
                               atol=0.6 / 255)  # fmt: skip


def test_format_glb_names_the_default_file(ball_run, capsys) -> None:
    argv = [ball_run, "--resolution", 32, "--format", "glb", "--vertex-colors", "--color-view", "normal"]
    code, out, err = mesh([*argv, "--device", "cpu"], capsys)
    assert code == 0, err
    (path,) = ball_run.glob("mesh_*.glb")
    assert str(path) in out and path.read_bytes()[:4] == b"glTF"
    assert "depth maps" not in err
    assert trimesh.load(path, force="mesh").visual.kind == "vertex"


def test_refusals_are_one_line(ball_run, tmp_path, capsys) -> None:
    one_error_line(*mesh([ball_run, "--out", tmp_path / "m.stl"], capsys)[::2], "m.stl", ".ply")
    one_error_line(
        *mesh([ball_run, "--out", tmp_path / "m.obj", "--format", "glb"], capsys)[::2], ".obj", "glb"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_sdf_negative_everywhere_is_refused(tiny_scene, tmp_path, capsys) -> None:
    """A sphere of radius 1.5 around a bounding sphere of radius 1: the SDF is negative everywhere inside
    it, and the mesh would be the bounding sphere itself."""
    run = sphere_run(tiny_scene, tmp_path / "negative", radius=1.5)
    out = tmp_path / "negative.ply"
    code, _, err = mesh([run, "--resolution", 32, "--out", out, "--device", "cpu"], capsys)
    one_error_line(code, err, "bounding sphere")
    assert not out.exists()


def test_texture_writes_a_textured_glb(ball_run, tmp_path, capsys, monkeypatch) -> None:
    one_error_line(*mesh([ball_run, "--texture", "--format", "ply"], capsys)[::2], "--texture", "glb")
    monkeypatch.setattr("nsr.mesh.texture.has_xatlas", lambda: False)
    one_error_line(*mesh([ball_run, "--texture"], capsys)[::2], 'pip install "nsr[texture]"')
    monkeypatch.undo()
    pytest.importorskip("xatlas")
    out = tmp_path / "t.glb"
    argv = [ball_run, "--texture", "--texture-size", 64, "--resolution", 24, "--out", out, "--device", "cpu"]
    code, stdout, err = mesh(argv, capsys)
    assert code == 0, err
    assert "unwrapping" in stdout and "texture" in stdout
    loaded = trimesh.load(out, force="mesh")
    assert loaded.visual.kind == "texture"
    texels = np.asarray(loaded.visual.material.baseColorTexture)[..., :3].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(texels, np.tile(COLOUR, (len(texels), 1)), atol=0.6 / 255)
