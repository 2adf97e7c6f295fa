"""Reading mesh and point-cloud files given by the user, with one clear line for any file that is not one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from nsr.data.errors import DataError


def read_mesh(
    path: str | Path, what: str = "mesh", points_ok: bool = False, materials: bool = True
) -> trimesh.Trimesh | trimesh.PointCloud:
    """Read a triangle mesh (PLY, OBJ, STL, OFF, GLB ... as trimesh reads them, as stored: no vertex
    merging); with `points_ok`, a point cloud (or a mesh without faces, as its vertices) is accepted too.

    Args:
        path: the file.
        what: what the file is for, in messages (`ground-truth mesh`).
        points_ok: accept a point cloud.
        materials: read the materials and textures (off: faster, for geometry alone).

    Raises:
        DataError: naming the file: missing, a folder, not a format trimesh reads, unreadable or truncated,
            no triangles (no points), non-finite coordinates.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"{what} file not found")
    if path.is_dir():
        raise DataError(path, f"is a folder, not a {what} file")
    if path.stat().st_size == 0:
        raise DataError(path, f"empty file, not a {what}")
    try:
        loaded = trimesh.load(path, process=False, skip_materials=not materials)
        if isinstance(loaded, trimesh.Scene):
            loaded = loaded.to_geometry() if hasattr(loaded, "to_geometry") else loaded.dump(concatenate=True)
    except Exception as err:  # trimesh raises many types for files it cannot read (ValueError, KeyError,
        # NotImplementedError for unknown formats, ImportError for an optional reader it lacks, ...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        detail = f"{type(err).__name__}: {reason}" if reason else type(err).__name__
        raise DataError(path, f"not a readable {what} ({detail[:160]})") from None
    if isinstance(loaded, trimesh.PointCloud) and not points_ok:
        raise DataError(path, f"the file holds no triangles (a point cloud, not a {what})")
    if not isinstance(loaded, trimesh.Trimesh | trimesh.PointCloud):
        raise DataError(path, f"not a {what} (the file holds {type(loaded).__name__})")
    vertices = np.asarray(loaded.vertices)
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces) == 0:
        if not points_ok:
            raise DataError(path, f"the file holds no triangles (not a {what})")
        loaded = trimesh.PointCloud(vertices)
    if isinstance(loaded, trimesh.Trimesh) and not loaded.area > 0:
        if not points_ok:
            raise DataError(path, f"the {what} has zero area (all its faces are degenerate)")
        loaded = trimesh.PointCloud(vertices)
    if len(vertices) == 0:
        raise DataError(path, f"the file holds no points (not a {what})")
    if not np.all(np.isfinite(vertices)):
        raise DataError(path, f"the {what} has non-finite vertex coordinates")
    return loaded


__all__ = ["read_mesh"]
