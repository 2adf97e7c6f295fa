"""`benchmarks/mesh_alignment.py`: a trained-camera run's mesh, its Chamfer as aligned and after ICP."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from conftest import load_benchmark


def test_a_run_mesh_is_measured_as_aligned_and_after_icp(tmp_path):
    tool = load_benchmark("mesh_alignment")
    gt = trimesh.creation.icosphere(subdivisions=4)
    gt.vertices = gt.vertices * [1.0, 0.7, 0.45] + 0.03 * np.sin(6 * gt.vertices)
    run = tmp_path / "run"
    run.mkdir()
    moved = gt.copy()
    moved.apply_transform(trimesh.transformations.rotation_matrix(np.radians(4.0), [0.2, 1.0, 0.3]))
    moved.export(run / "mesh_aligned_0000004.ply")
    (run / "mesh_0000002.ply").write_text("not read: the aligned mesh comes first")
    assert tool.latest_mesh(run).name == "mesh_aligned_0000004.ply"
    row = tool.measure(trimesh.load(tool.latest_mesh(run), force="mesh"), gt, samples=20_000)
    assert row["chamfer_icp_pct"] < 0.7 * row["chamfer_pct"]
    assert row["icp_rotation_deg"] == pytest.approx(4.0, abs=0.1)


def test_a_run_folder_without_a_mesh_is_named(tmp_path):
    tool = load_benchmark("mesh_alignment")
    with pytest.raises(FileNotFoundError, match="no mesh_aligned"):
        tool.latest_mesh(tmp_path)
