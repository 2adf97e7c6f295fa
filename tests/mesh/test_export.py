"""Mesh files by name: the format a suffix asks for, refused when unknown or contradicted, written atomically."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nsr.mesh import MeshError, mesh_format, save_mesh


@pytest.fixture
def mesh() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=2, radius=0.5)


@pytest.mark.parametrize(
    ("kind", "magic"), [("ply", b"ply\nformat binary_little_endian"), ("obj", b"# "), ("glb", b"glTF")]
)
def test_each_suffix_writes_its_own_format(mesh, kind, magic, tmp_path) -> None:
    path = save_mesh(mesh, tmp_path / "out" / f"mesh.{kind.upper() if kind == 'obj' else kind}")
    data = path.read_bytes()
    assert data.startswith(magic)
    if kind == "obj":
        assert b"\nv " in data and b"\nf " in data and b"ply" not in data[:10]
    loaded = trimesh.load(path, file_type=kind, process=False, force="mesh")
    assert len(loaded.faces) == len(mesh.faces)
    np.testing.assert_allclose(np.sort(loaded.vertices, axis=0), np.sort(mesh.vertices, axis=0), atol=1e-6)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_format_follows_the_suffix_or_is_refused(tmp_path) -> None:
    assert mesh_format("a/mesh.OBJ") == "obj"
    assert mesh_format("mesh.glb", "glb") == "glb"
    assert mesh_format("mesh", "obj") == "obj"
    with pytest.raises(MeshError, match=r"\.obj does not match the format ply"):
        mesh_format("mesh.obj", "ply")
    with pytest.raises(MeshError, match=r"cannot write \.stl meshes"):
        mesh_format("mesh.stl")
    with pytest.raises(MeshError, match="no suffix"):
        mesh_format("mesh")
    with pytest.raises(MeshError, match="unknown mesh format"):
        mesh_format("mesh.ply", "stl")


def test_a_refused_name_writes_nothing(mesh, tmp_path) -> None:
    with pytest.raises(MeshError):
        save_mesh(mesh, tmp_path / "mesh.stl")
    with pytest.raises(MeshError):
        save_mesh(mesh, tmp_path / "mesh.obj", "glb")
    assert list(tmp_path.iterdir()) == []


def test_a_texture_is_written_only_as_glb(mesh, tmp_path) -> None:
    from PIL import Image

    uv = (mesh.vertices[:, :2] + 0.5).clip(0, 1)
    textured = mesh.copy()
    textured.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.new("RGB", (4, 4), (200, 10, 10)))
    for kind in ("ply", "obj"):
        with pytest.raises(MeshError, match=r"only be written as \.glb"):
            save_mesh(textured, tmp_path / f"mesh.{kind}")
    loaded = trimesh.load(save_mesh(textured, tmp_path / "mesh.glb"), force="mesh")
    assert loaded.visual.kind == "texture"
