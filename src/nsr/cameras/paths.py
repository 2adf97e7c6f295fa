"""Smooth camera paths for novel views: an orbit around the training cameras, or a closed spline
through them. Cameras follow the OpenCV convention (x right, y down, z forward) as everywhere in NSR."""

from __future__ import annotations

import numpy as np


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(4, 4) camera-to-world of an OpenCV camera at `eye` looking at `target`, image up along `up`."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking along `up`: pick any perpendicular
        right = np.cross(
            forward, np.array([1.0, 0.0, 0.0]) if abs(forward[0]) < 0.9 else np.array([0, 1.0, 0])
        )
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def focus_point(c2w: np.ndarray) -> np.ndarray:
    """The point closest (least squares) to all optical axes of (N, 4, 4) cameras; their mean centre
    when the axes are (nearly) parallel."""
    centres, axes = c2w[:, :3, 3], c2w[:, :3, 2]
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for c, d in zip(centres, axes):
        p = np.eye(3) - np.outer(d, d)
        a += p
        b += p @ c
    if np.linalg.cond(a) > 1e8:
        return centres.mean(0)
    return np.linalg.solve(a, b)


def mean_up(c2w: np.ndarray) -> np.ndarray:
    """Average image-up direction (-y of OpenCV cameras), unit length."""
    up = -c2w[:, :3, 1].mean(0)
    return up / np.linalg.norm(up)


def orbit_path(c2w: np.ndarray, frames: int, elevation: float | None = None) -> np.ndarray:
    """(frames, 4, 4) cameras on a circle around the cameras' focus point and mean up axis, at their mean
    distance and (by default) mean elevation, starting at the first camera's azimuth."""
    centre, up = focus_point(c2w), mean_up(c2w)
    offsets = c2w[:, :3, 3] - centre
    radius = float(np.linalg.norm(offsets, axis=1).mean())
    heights = offsets @ up
    if elevation is None:
        elevation = float(np.arcsin(np.clip(np.mean(heights / np.linalg.norm(offsets, axis=1)), -1, 1)))
    first = offsets[0] - heights[0] * up
    e1 = first / np.linalg.norm(first) if np.linalg.norm(first) > 1e-9 else _perpendicular(up)
    e2 = np.cross(up, e1)
    poses = []
    for t in np.linspace(0, 2 * np.pi, frames, endpoint=False):
        direction = np.cos(elevation) * (np.cos(t) * e1 + np.sin(t) * e2) + np.sin(elevation) * up
        poses.append(look_at(centre + radius * direction, centre, up))
    return np.stack(poses)


def spline_path(c2w: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 4, 4) cameras on a closed Catmull-Rom spline through the camera centres, ordered by
    azimuth around the mean up axis, all looking at the focus point."""
    centre, up = focus_point(c2w), mean_up(c2w)
    offsets = c2w[:, :3, 3] - centre
    e1 = _perpendicular(up)
    e2 = np.cross(up, e1)
    order = np.argsort(np.arctan2(offsets @ e2, offsets @ e1))
    keys = c2w[order, :3, 3]
    n = len(keys)
    if n < 2:
        raise ValueError("a spline path needs at least 2 cameras")
    poses = []
    for s in np.linspace(0, n, frames, endpoint=False):
        i, t = int(np.floor(s)) % n, s - np.floor(s)
        p0, p1, p2, p3 = keys[(i - 1) % n], keys[i], keys[(i + 1) % n], keys[(i + 2) % n]
        eye = 0.5 * (
            2 * p1
            + (p2 - p0) * t
            + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
            + (3 * p1 - p0 - 3 * p2 + p3) * t**3
        )
        poses.append(look_at(eye, centre, up))
    return np.stack(poses)


def _perpendicular(v: np.ndarray) -> np.ndarray:
    helper = np.array([1.0, 0.0, 0.0]) if abs(v[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    p = np.cross(v, helper)
    return p / np.linalg.norm(p)
