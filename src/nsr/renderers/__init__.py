"""Renderers: functions of a field passed at call time."""

from nsr.renderers.implicit import differentiable_surface_points
from nsr.renderers.occupancy import OccupancyGrid, OccupancyGridConfig
from nsr.renderers.sphere_tracing import (
    GraphedTrace,
    SphereTracer,
    SphereTracerConfig,
    TraceResult,
    intersect_sphere,
)
from nsr.renderers.volume import (
    FieldSamples,
    VolumeRenderer,
    VolumeRendererConfig,
    VolumeRenderOutput,
    VolumeSamples,
    composite_weights,
    inverted_sphere,
    neus_alpha,
    sample_pdf,
)

__all__ = [
    "FieldSamples",
    "GraphedTrace",
    "OccupancyGrid",
    "OccupancyGridConfig",
    "SphereTracer",
    "SphereTracerConfig",
    "TraceResult",
    "VolumeRenderOutput",
    "VolumeRenderer",
    "VolumeRendererConfig",
    "VolumeSamples",
    "composite_weights",
    "differentiable_surface_points",
    "intersect_sphere",
    "inverted_sphere",
    "neus_alpha",
    "sample_pdf",
]
