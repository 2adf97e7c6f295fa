"""Intel Embree ray casting through trimesh (`pip install "nsr[synth]"`, i.e. the embreex wheel).

The only module that imports embreex. `has_embree()` is a probe and never raises.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = 'install the ray caster with: pip install "nsr[synth]"  (or: pip install embreex)'


def has_embree() -> bool:
    """True when embreex (Embree bindings used by trimesh) can be imported."""
    try:
        return importlib.util.find_spec("embreex") is not None
    except (ImportError, ValueError):
        return False


def ray_intersector(mesh):
    """A trimesh `RayMeshIntersector` on Embree for `mesh` (first-hit queries in float32).

    Raises:
        ImportError: with the install hint when embreex is missing.
    """
    if not has_embree():
        raise ImportError(f"nsr data synth needs Embree: {INSTALL_HINT}")
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    return RayMeshIntersector(mesh)
