"""`benchmarks/mesh_alignment.py`: a trained-camera mesh's Chamfer distance as aligned and after ICP."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from conftest import load_benchmark


def _bumpy_sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=4)
    direction = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    radius = 1 + 0.05 * np.sin(5 * direction[:, 0]) * np.cos(4 * direction[:, 2])
    mesh.vertices = (
        direction * radius[:, None] * [1.0, 0.7, 0.45]
    )  # no axis of symmetry for ICP to slide along
    return mesh


def test_icp_takes_off_a_misalignment_and_leaves_an_aligned_mesh_alone(tmp_path):
    tool = load_benchmark("mesh_alignment")
    gt = _bumpy_sphere()
    moved = gt.copy()
    motion = trimesh.transformations.rotation_matrix(np.radians(1.0), [0.2, 1.0, 0.3], [0.1, 0, 0])
    motion[:3, 3] += [0.006, -0.004, 0.002]
    moved.apply_transform(motion)
    off, aligned = tool.measure(moved, gt), tool.measure(gt.copy(), gt)
    # the misaligned copy: ICP finds the motion and takes the Chamfer back to the metric's floor
    assert off["chamfer_pct"] > 1.5 * aligned["chamfer_pct"]
    assert abs(off["icp_rotation_deg"] - 1.0) < 0.05
    assert off["chamfer_icp_pct"] < 1.05 * aligned["chamfer_pct"]
    # the aligned copy (the control): nothing to take off
    assert aligned["icp_rotation_deg"] < 0.1  # sampling noise only
    assert abs(aligned["chamfer_icp_pct"] - aligned["chamfer_pct"]) < 0.05 * aligned["chamfer_pct"]
    assert abs(aligned["icp_scale"] - 1) < 1e-3


def test_a_run_folder_without_a_mesh_is_named(tmp_path):
    tool = load_benchmark("mesh_alignment")
    with pytest.raises(FileNotFoundError, match="no mesh_aligned"):
        tool.latest_mesh(tmp_path)
