"""Mesh extraction (marching cubes with a narrow band), transforms and export."""

from nsr.mesh.extract import MeshError, extract_mesh, largest_component, save_mesh, transform_mesh

__all__ = ["MeshError", "extract_mesh", "largest_component", "save_mesh", "transform_mesh"]
