"""libigl (the `libigl` wheel, module `igl`), an optional fast path for mesh distances.

Used by `nsr.mesh.distance` for ground-truth signed distances: an AABB tree for point-to-triangle
distances and the fast winding number (Barill et al. 2018) for inside/outside. Install it with
`pip install "nsr[bench]"`. The probe imports it lazily and never raises.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def has_libigl() -> bool:
    """libigl's Python bindings import and have the functions NSR uses."""
    try:
        import igl

        return hasattr(igl, "fast_winding_number") and hasattr(igl, "point_mesh_squared_distance")
    except Exception:
        return False


def _arrays(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray):
    return (
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
    )


def winding_number(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Fast (tree-approximated) generalised winding number, (N, 3) points -> (N,) float64."""
    import igl

    p, v, f = _arrays(points, vertices, faces)
    return np.asarray(igl.fast_winding_number(v, f, p), dtype=np.float64).reshape(-1)


def unsigned_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Exact distance to the nearest triangle (AABB tree), (N, 3) points -> (N,) float64."""
    import igl

    p, v, f = _arrays(points, vertices, faces)
    squared = igl.point_mesh_squared_distance(p, v, f)[0]
    return np.sqrt(np.maximum(np.asarray(squared, dtype=np.float64).reshape(-1), 0.0))


__all__ = ["has_libigl", "unsigned_distance", "winding_number"]
