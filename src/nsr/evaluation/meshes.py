"""Meshes of a run: marching cubes of its SDF in world units, optionally with unseen pockets filled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from nsr.engine.run import Run, model_sdf, with_run_poses
from nsr.evaluation.images import load_run_scene
from nsr.mesh.extract import extract_mesh, transform_mesh
from nsr.mesh.visibility import DepthViews, fill_unseen, render_depth_views
from nsr.models import Model


def extract_world_mesh(
    model: Model,
    scale_mat: np.ndarray,
    resolution: int,
    bound: float = 1.0,
    keep_largest: bool = True,
    progress=None,
    clip_to_bounding_sphere: bool = True,
    views: DepthViews | None = None,
    **extract_options,
) -> trimesh.Trimesh:
    """Marching cubes of the model's SDF in the normalised frame, mapped to world units.

    With `views` (see `training_depth_views`), positive space that no camera sees as empty is filled
    first (`nsr.mesh.visibility`), to within two grid cells of what the cameras see. Other keyword
    arguments go to `nsr.mesh.extract_mesh` (`block_size`, `on_estimate`, ...); a surface that is the
    bounding sphere itself is refused there (MeshError).
    """
    device = next(model.parameters()).device
    field_sdf = model_sdf(model)
    radius = model.bounding_radius
    if views is not None:
        field_sdf = fill_unseen(
            field_sdf, views, tolerance=2 * (2 * bound / (resolution - 1)), bounding_radius=radius
        )

    # The surface exists only inside the bounding sphere (nothing outside is rendered or supervised):
    # intersect with it, so unconstrained zero crossings in the cube's corners never reach the mesh.
    mesh = extract_mesh(
        field_sdf,
        resolution=resolution,
        bound=bound,
        keep_largest=keep_largest,
        device=device,
        progress=progress,
        clip_radius=radius if clip_to_bounding_sphere else None,
        **extract_options,
    )
    return transform_mesh(mesh, scale_mat)


def training_depth_views(
    run_: Run, data: str | Path | None = None, max_side: int = 200, progress=None
) -> DepthViews:
    """Depth maps of a run's surface from its training cameras, at their final poses (model frame), for
    `extract_world_mesh(..., views=...)`. Reads the cameras from the run's scene (`data`: where it lies
    now, if it moved); `progress(done, total)` counts the views traced."""
    scene = with_run_poses(run_, load_run_scene(run_, data))
    views = list(run_.train_views)
    return render_depth_views(
        model_sdf(run_.model),
        run_.model.surface_tracer,
        scene.intrinsics[views],
        scene.c2w[views],
        scene.height,
        scene.width,
        max_side=max_side,
        device=next(run_.model.parameters()).device,
        progress=progress,
    )
