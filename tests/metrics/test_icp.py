"""`nsr.metrics.geometry.icp_onto`: a mesh moved onto the ground truth by ICP, and the motion it took."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nsr.metrics.geometry import icp_onto, sample_surface


def _lumpy_ellipsoid() -> trimesh.Trimesh:
    """No axis of symmetry for ICP to slide along."""
    mesh = trimesh.creation.icosphere(subdivisions=4)
    direction = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    radius = 1 + 0.05 * np.sin(5 * direction[:, 0]) * np.cos(4 * direction[:, 2])
    mesh.vertices = direction * radius[:, None] * [1.0, 0.7, 0.45]
    return mesh


@pytest.mark.parametrize("reference", ["mesh", "points"])
def test_icp_finds_the_motion_that_misaligned_a_copy(reference):
    gt = _lumpy_ellipsoid()
    moved = gt.copy()
    motion = trimesh.transformations.rotation_matrix(np.radians(1.0), [0.2, 1.0, 0.3], [0.1, 0, 0])
    motion[:3, 3] += [0.006, -0.004, 0.002]
    moved.apply_transform(motion)
    target = gt if reference == "mesh" else sample_surface(gt, 60_000, 5)[0]
    back, found = icp_onto(moved, target, samples=20_000)
    assert found["rotation_deg"] == pytest.approx(1.0, abs=0.1)
    assert found["scale"] == pytest.approx(1.0, abs=2e-3)
    # the vertices land back where they were, to a small fraction of the motion (about 0.02 at the far end)
    assert np.abs(back.vertices - gt.vertices).max() < 2e-3
    assert found["shift_rel"] > 0


def test_icp_refuses_meshes_that_do_not_meet():
    gt = _lumpy_ellipsoid()
    far = gt.copy()
    far.apply_translation([10.0, 0, 0])
    with pytest.raises(ValueError, match="point pairs closer than"):
        icp_onto(far, gt, samples=2_000)
