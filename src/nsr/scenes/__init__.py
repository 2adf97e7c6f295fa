"""Scenes NSR generates itself: the embedded default scene and its analytic SDF primitives."""

from nsr.scenes.default import (
    GENERATOR_VERSION,
    SCENE_NAME,
    default_cameras,
    default_object_albedo,
    default_object_mesh,
    default_object_normals,
    default_object_sdf,
    default_scale_mat,
    generate_default_scene,
    handle_hole_centre,
    is_cached,
    look_at,
    render_analytic_views,
    render_default_scene,
    trace_surface,
)

__all__ = [
    "GENERATOR_VERSION",
    "SCENE_NAME",
    "default_cameras",
    "default_object_albedo",
    "default_object_mesh",
    "default_object_normals",
    "default_object_sdf",
    "default_scale_mat",
    "generate_default_scene",
    "handle_hole_centre",
    "is_cached",
    "look_at",
    "render_analytic_views",
    "render_default_scene",
    "trace_surface",
]
