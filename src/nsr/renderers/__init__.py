"""Renderers: functions of a field passed at call time."""

from nsr.renderers.implicit import differentiable_surface_points
from nsr.renderers.sphere_tracing import (
    GraphedTrace,
    SphereTracer,
    SphereTracerConfig,
    TraceResult,
    intersect_sphere,
)

__all__ = [
    "GraphedTrace",
    "SphereTracer",
    "SphereTracerConfig",
    "TraceResult",
    "differentiable_surface_points",
    "intersect_sphere",
]
