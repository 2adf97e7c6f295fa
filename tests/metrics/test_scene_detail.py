"""`benchmarks/scene_detail.py`: how much fine detail a GT mesh has, comparable between meshes."""

from __future__ import annotations

import numpy as np
import trimesh

from conftest import load_benchmark


def test_a_bumpy_sphere_has_more_detail_than_a_smooth_one_at_any_size(tmp_path):
    tool = load_benchmark("scene_detail")
    smooth = trimesh.creation.icosphere(subdivisions=5)
    bumpy = smooth.copy()
    direction = bumpy.vertices / np.linalg.norm(bumpy.vertices, axis=1, keepdims=True)
    bumpy.vertices = (
        direction * (1 + 0.02 * np.sin(40 * direction[:, 0]) * np.sin(40 * direction[:, 1]))[:, None]
    )
    rows = {}
    for name, mesh, scale in (("smooth", smooth, 1.0), ("bumpy", bumpy, 1.0), ("bumpy_big", bumpy, 7.0)):
        mesh = mesh.copy()
        mesh.apply_scale(scale)
        path = tmp_path / f"{name}.ply"
        mesh.export(path)
        rows[name] = tool.describe(path, samples=40_000, queries=2_000, seed=0)
    for key in ("mean@0.5%", "p90@0.5%", "share>0.01@1%"):
        assert rows["bumpy"][key] > 2 * rows["smooth"][key]
        # radii relative to the diagonal: the same shape at another size measures the same
        assert abs(rows["bumpy_big"][key] - rows["bumpy"][key]) <= 0.1 * rows["bumpy"][key] + 1e-3
    assert rows["smooth"]["mean@0.25%"] < 1e-3  # a sphere is nearly flat at 0.25% of its diagonal
