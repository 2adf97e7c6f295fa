"""Decomposition of 3x4 projection matrices P = K [R | t] without OpenCV.

Conventions (see docs/conventions.md): OpenCV camera frame (x right, y down, z forward),
`K` upper triangular with positive focal lengths and K[2, 2] = 1, `c2w` the 4x4 camera-to-world
transform whose translation column is the camera centre.
"""

from __future__ import annotations

import numpy as np


def _rq(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RQ decomposition of a 3x3 matrix: matrix = R @ Q, R upper triangular, Q orthogonal."""
    flip = np.flipud(np.eye(3))
    q, r = np.linalg.qr((flip @ matrix).T)
    r = flip @ r.T @ flip
    q = flip @ q.T
    return r, q


def decompose_projection(projection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a projection matrix into intrinsics and a camera-to-world pose.

    Args:
        projection: (3, 4) or (4, 4) matrix P with `d * [u, v, 1]^T = P @ [X, Y, Z, 1]^T`.

    Returns:
        K: (3, 3) intrinsics, upper triangular, positive diagonal, K[2, 2] = 1.
        c2w: (4, 4) camera-to-world transform (rotation columns = camera axes in world).

    Raises:
        ValueError: when the matrix is not finite or its left 3x3 block is singular.
    """
    p = np.asarray(projection, dtype=np.float64)[:3, :4]
    if not np.all(np.isfinite(p)):
        raise ValueError("projection matrix contains NaN or infinite values")
    m = p[:, :3]
    if abs(np.linalg.det(m)) < 1e-12 * max(1.0, np.abs(m).max()) ** 3:
        raise ValueError("projection matrix is singular (its left 3x3 block has zero determinant)")
    k, r = _rq(m)
    # Make the diagonal of K positive: K R = (K D)(D R) with D = diag(+-1).
    d = np.diag(np.sign(np.diag(k)))
    k = k @ d
    r = d @ r
    # P = K [R | t]; an overall negative scale of P flips R into a reflection: undo it.
    scale = k[2, 2]
    k = k / scale
    t = np.linalg.solve(k, p[:, 3] / scale)
    if np.linalg.det(r) < 0:
        r, t = -r, -t
    centre = -r.T @ t
    c2w = np.eye(4)
    c2w[:3, :3] = r.T
    c2w[:3, 3] = centre
    return k, c2w


def compose_projection(intrinsics: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Inverse of `decompose_projection`: (3, 3) K and (4, 4) c2w -> (4, 4) world_mat (last row 0 0 0 1)."""
    w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
    out = np.eye(4)
    out[:3, :4] = np.asarray(intrinsics, dtype=np.float64) @ w2c[:3, :4]
    return out
