"""UV unwrapping with xatlas (`pip install "nsr[texture]"`, i.e. the xatlas wheel), for textured meshes.

The only module that imports xatlas. `has_xatlas()` is a probe and never raises.
"""

from __future__ import annotations

import importlib.util

import numpy as np

INSTALL_HINT = 'install the UV unwrapper with: pip install "nsr[texture]"  (or: pip install xatlas)'


def has_xatlas() -> bool:
    """True when xatlas can be imported."""
    try:
        return importlib.util.find_spec("xatlas") is not None
    except (ImportError, ValueError):
        return False


def unwrap(
    vertices: np.ndarray, faces: np.ndarray, resolution: int = 1024, padding: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a mesh into charts and pack them into the unit square.

    One chart-growing iteration and no brute-force packing (xatlas' defaults take minutes on a
    100k-triangle mesh); the charts are packed for a `resolution`^2 texture with `padding` texels between
    them.

    Args:
        vertices: (V, 3) float positions; faces: (F, 3) vertex indices.

    Returns:
        vmapping (V',) int64: the input vertex of every output vertex (seams duplicate vertices), faces
        (F, 3) int64 into the output vertices (same order as the input faces), uv (V', 2) float32 in
        [0, 1] (origin at the bottom left, as trimesh's `TextureVisuals`).

    Raises:
        ImportError: with the install hint when xatlas is missing.
    """
    if not has_xatlas():
        raise ImportError(f"textured meshes need xatlas: {INSTALL_HINT}")
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(
        np.ascontiguousarray(vertices, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.uint32)
    )
    charts = xatlas.ChartOptions()
    charts.max_iterations = 1
    packing = xatlas.PackOptions()
    packing.bruteForce = False
    packing.resolution = resolution
    packing.padding = padding
    atlas.generate(charts, packing)
    vmapping, indices, uvs = atlas[0]
    return vmapping.astype(np.int64), indices.astype(np.int64), uvs.astype(np.float32)
