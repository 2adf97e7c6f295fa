import numpy as np
import pytest

from nsr.cameras.paths import focus_point, look_at, orbit_path, spline_path


def _ring(n=8, radius=3.0, height=1.0):
    up = np.array([0.0, 0.0, 1.0])
    poses = []
    for t in np.linspace(0, 2 * np.pi, n, endpoint=False):
        eye = np.array([radius * np.cos(t), radius * np.sin(t), height])
        poses.append(look_at(eye, np.zeros(3), up))
    return np.stack(poses)


def test_look_at_is_a_rotation_facing_the_target():
    c2w = look_at(np.array([0.0, -3, 1]), np.zeros(3), np.array([0.0, 0, 1]))
    r = c2w[:3, :3]
    assert np.allclose(r.T @ r, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)
    assert np.allclose(r[:, 2], -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3]))
    assert r[2, 1] < 0  # image down points away from world up


def test_orbit_and_spline_follow_the_cameras():
    cams = _ring()
    assert np.allclose(focus_point(cams), 0, atol=1e-9)
    orbit = orbit_path(cams, 12)
    dist = np.linalg.norm(orbit[:, :3, 3], axis=1)
    assert np.allclose(dist, np.linalg.norm(cams[0, :3, 3]))
    assert np.allclose(orbit[:, 2, 3], 1.0)  # same elevation
    assert np.allclose(orbit[0, :3, 3], cams[0, :3, 3])
    for pose in orbit:
        assert np.allclose(pose[:3, 2], -pose[:3, 3] / np.linalg.norm(pose[:3, 3]))
    spline = spline_path(cams, 16)  # 2 frames per key camera: every other frame is a key camera
    keys = {tuple(np.round(c[:3, 3], 6)) for c in cams}
    assert sum(tuple(np.round(p[:3, 3], 6)) in keys for p in spline) == 8
    steps = np.linalg.norm(np.diff(spline[:, :3, 3], axis=0), axis=1)
    assert steps.max() < 2 * steps.min()  # smooth, evenly spread
