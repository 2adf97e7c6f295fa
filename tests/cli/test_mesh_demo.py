"""`nsr mesh` on a trained demo run (slow: the session's `nsr demo` training, then 1024^3 marching cubes).

The colour bar: the vertex colours of `nsr mesh RUN --vertex-colors --format glb`, sampled at surface points
that the scene's cameras see, against the colour those cameras' images show there. The generated scene is
Lambertian under a light fixed in the object frame (`nsr.scenes.default.shade`: albedo x (0.35 ambient + 0.65
diffuse)), so what every view shows at a point is one view-independent colour, the shaded albedo; that is
the "albedo rendering" compared (the images hold it quantised to 8 bits; here it is evaluated exactly).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree


def nsr(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nsr.cli.main", *map(str, args)], capture_output=True, text=True, check=True
    )


@pytest.fixture
def demo(demo_run):
    """The session's finished `nsr demo` folder (scene/, run/; tests/conftest.py)."""
    return demo_run[0]


@pytest.mark.slow
@pytest.mark.hours
def test_vertex_colours_match_the_scene(demo, tmp_path) -> None:
    from nsr.scenes.default import (
        default_cameras,
        default_object_normals,
        default_scale_mat,
        shade,
        trace_surface,
    )

    out = tmp_path / "coloured.glb"
    nsr("mesh", demo / "run", "--vertex-colors", "--format", "glb", "--resolution", "256", "--out", out)
    mesh = trimesh.load(out, force="mesh", process=False)
    assert mesh.visual.kind == "vertex"
    world_to_model = np.linalg.inv(default_scale_mat())
    vertices = np.asarray(mesh.vertices) @ world_to_model[:3, :3].T + world_to_model[:3, 3]
    colours = mesh.visual.vertex_colors[:, :3] / 255.0

    # Surface points the scene's cameras see: every 3rd pixel hit of 10 of its 40 views.
    intrinsics, c2w = default_cameras(40, 128)
    points, hit = trace_surface(intrinsics[::4], c2w[::4], 128, 128)
    points = points[hit][::3]
    expected = shade(points, default_object_normals(points)).numpy()
    distance, nearest = cKDTree(vertices).query(points.numpy())
    error = np.abs(colours[nearest] - expected).mean()
    print(f"vertex colours vs the scene: MAE {error:.4f} over {len(points)} points "
          f"(median distance to the nearest vertex {np.median(distance):.4f})")  # fmt: skip
    assert np.median(distance) < 0.01
    assert error < 0.1
    # Not met by a colour that ignores the position: the scene's mean colour is far worse.
    assert np.abs(expected.mean(0) - expected).mean() > 2 * error


@pytest.mark.slow
@pytest.mark.hours
def test_1024_peaks_below_4_gb(demo, tmp_path) -> None:
    out = tmp_path / "mesh_1024.ply"
    command = [sys.executable, "-m", "nsr.cli.main", "mesh", str(demo / "run"), "--resolution", "1024",
               "--out", str(out), "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    print(f"nsr mesh --resolution 1024: peak RSS {peak / 1e9:.2f} GB; {output.strip()}")
    assert "marching cubes at 1024^3" in output
    assert peak < 4e9
    assert len(trimesh.load(out, process=False).faces) > 1_000_000
