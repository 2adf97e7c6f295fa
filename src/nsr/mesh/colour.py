"""Vertex colours from a model's appearance network, as instant-nsr-pl and Neuralangelo export them.

The appearance network maps (point, normal, view direction, geometry features) to a colour. At a mesh
vertex the point is the vertex (model frame), and the normal and the features come from one call of the
SDF field there (`with_gradient(x, create_graph=False)`); the normal is passed as the IDR renderer passes
it (the raw SDF gradient, unit length once the eikonal term has converged), so a vertex gets the colour
the renderer would show at that point from that direction.

The view direction is the one choice left, and the two ways to make it (`view_directions`):

- `views=None`: looking straight at the surface, view direction = -normal (instant-nsr-pl's
  `export_vertex_color` and Neuralangelo's `--textured` do this): no cameras needed, but a direction
  the network may never have seen for that point, e.g. from below a surface only photographed from above.
- with the training cameras' depth maps (`nsr.mesh.visibility.DepthViews`): the mean of the unit
  directions from the cameras that see the vertex to it, so the colour is the network's average
  appearance over the directions it was trained on there; -normal where no camera sees the vertex.
  `nsr mesh --vertex-colors` uses this when it can read the run's scene.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
import trimesh

from nsr.mesh.visibility import DepthViews


class _FieldOutput(Protocol):
    features: torch.Tensor
    gradient: torch.Tensor | None


class GeometryField(Protocol):
    """What colouring needs from an SDF field (`nsr.fields.sdf.SDFField` is one)."""

    def with_gradient(self, x: torch.Tensor, create_graph: bool = True) -> _FieldOutput:
        """Values, (M, F) features and (M, 3) gradient at (M, 3) points."""
        ...


AppearanceFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(points, normals, view directions from the camera to the point, features), all (M, .) -> (M, 3) RGB in
[0, 1] (`nsr.fields.appearance.AppearanceField` is one)."""

ProgressFn = Callable[[int, int], None]
"""Called as progress(done, total) with counts of vertices coloured."""


def view_directions(
    points: torch.Tensor,
    normals: torch.Tensor,
    views: DepthViews | None = None,
    tolerance: float = 0.01,
) -> torch.Tensor:
    """(M, 3) unit view directions (camera to point) to colour surface points with; see the module docstring.

    Args:
        points: (M, 3) surface points, model frame. normals: (M, 3) outward normals (any length).
        views: depth maps of the surface from the training cameras, or None for -normal everywhere.
        tolerance: how far behind a camera's first surface a point may lie and still count as seen
            (model units; about two grid cells of the mesh, plus `DepthViews.sees`' pixel slack).
    """
    facing = -F.normalize(normals, dim=-1)
    if views is None or len(views.c2w) == 0:
        return facing
    seen = views.sees(points, tolerance).to(points.dtype)  # (N, M)
    total = torch.zeros_like(points)
    for weight, c2w in zip(seen, views.c2w):
        total += weight[:, None] * F.normalize(points - c2w[:3, 3], dim=-1)
    length = total.norm(dim=-1, keepdim=True)
    by_cameras = (seen.sum(0)[:, None] > 0) & (length > 1e-6)
    return torch.where(by_cameras, total / length.clamp_min(1e-12), facing)


def vertex_colours(
    points: np.ndarray | torch.Tensor,
    field: GeometryField,
    appearance: AppearanceFn,
    views: DepthViews | None = None,
    tolerance: float = 0.01,
    chunk_size: int = 65536,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Colours of surface points (mesh vertices) from an appearance network.

    Args:
        points: (V, 3) points in the model (normalised) frame.
        field: the SDF field, for normals and features; its parameters' device is used.
        appearance: the appearance network.
        views, tolerance: how view directions are chosen (`view_directions`).
        chunk_size: points per network call.
        progress: optional callable(done, total) after each chunk.

    Returns:
        (V, 3) float32 RGB in [0, 1].
    """
    points = torch.as_tensor(
        np.asarray(points, dtype=np.float32) if isinstance(points, np.ndarray) else points
    )
    device = _device(field, views)
    colours = np.empty((points.shape[0], 3), dtype=np.float32)
    for start in range(0, points.shape[0], chunk_size):
        x = points[start : start + chunk_size].to(device=device, dtype=torch.float32)
        out = field.with_gradient(x, create_graph=False)
        with torch.no_grad():
            directions = view_directions(x, out.gradient, views, tolerance)
            rgb = appearance(x, out.gradient.detach(), directions, out.features.detach())
        colours[start : start + len(x)] = rgb.clamp(0.0, 1.0).cpu().numpy()
        if progress is not None:
            progress(start + len(x), points.shape[0])
    return colours


def _device(field: GeometryField, views: DepthViews | None) -> torch.device:
    parameters = getattr(field, "parameters", None)
    if parameters is not None:
        first = next(iter(parameters()), None)
        if first is not None:
            return first.device
    return views.c2w.device if views is not None else torch.device("cpu")


def with_vertex_colours(mesh: trimesh.Trimesh, colours: np.ndarray) -> trimesh.Trimesh:
    """A copy of `mesh` carrying (V, 3) RGB colours in [0, 1] as 8-bit vertex colours (what PLY, OBJ and GLB
    store; `nsr.mesh.export.save_mesh` keeps them)."""
    colours = np.asarray(colours, dtype=np.float64)
    if colours.shape != (len(mesh.vertices), 3):
        raise ValueError(f"need ({len(mesh.vertices)}, 3) colours, got {colours.shape}")
    rgb = np.clip(np.round(colours * 255.0), 0, 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((len(rgb), 1), 255, dtype=np.uint8)], axis=1)
    return trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices),
        faces=np.asarray(mesh.faces),
        vertex_colors=rgba,
        process=False,
    )
