"""Mesh extraction (block-wise marching cubes with a narrow band), transforms, colours and export."""

from nsr.mesh.errors import MeshError
from nsr.mesh.export import MESH_FORMATS, mesh_format, save_mesh
from nsr.mesh.extract import MemoryEstimate, estimate_memory, extract_mesh, largest_component, transform_mesh

__all__ = [
    "MESH_FORMATS",
    "MemoryEstimate",
    "MeshError",
    "estimate_memory",
    "extract_mesh",
    "largest_component",
    "mesh_format",
    "save_mesh",
    "transform_mesh",
]
