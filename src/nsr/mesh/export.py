"""Mesh files by name: PLY, OBJ or GLB through trimesh, written atomically, vertex colours kept.

PLY (binary) and GLB carry vertex colours as 8-bit RGBA; OBJ carries them as `v x y z r g b` floats (read by
MeshLab, Blender and trimesh). GLB opens in browser viewers and in Blender. A UV-textured mesh is written
only as GLB (the texture embedded): PLY has no standard texture reference, and an OBJ's would need its
material file and image beside it.
"""

from __future__ import annotations

from pathlib import Path

import trimesh

from nsr.atomic import atomic_write
from nsr.mesh.errors import MeshError

MESH_FORMATS = ("ply", "obj", "glb")
"""The file formats `save_mesh` writes, named by their suffix."""


def mesh_format(path: str | Path, format: str | None = None) -> str:
    """The format to write `path` in: its suffix, which must be one of MESH_FORMATS and agree with `format`
    when both are given (a name without suffix takes `format`).

    Raises:
        MeshError: an unknown suffix or format, a suffix that contradicts `format`, or neither given.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    known = ", ".join(f".{name}" for name in MESH_FORMATS)
    if format is not None and format not in MESH_FORMATS:
        raise MeshError(f"unknown mesh format {format!r}: choose one of {', '.join(MESH_FORMATS)}")
    if not suffix:
        if format is None:
            raise MeshError(f"{path}: no suffix to choose a mesh format from; name it {known}")
        return format
    if suffix not in MESH_FORMATS:
        raise MeshError(f"{path}: cannot write .{suffix} meshes; name the file {known}")
    if format is not None and format != suffix:
        raise MeshError(f"{path}: the suffix .{suffix} does not match the format {format} asked for")
    return suffix


def save_mesh(mesh: trimesh.Trimesh, path: str | Path, format: str | None = None) -> Path:
    """Write a mesh in the format its name says (see `mesh_format`), atomically: a temporary file in the same
    folder, then os.replace, so a reader never sees a half-written file and an interrupted write leaves the
    old file intact. Missing parent folders are created. Returns the path written.

    Vertex colours (`mesh.visual.vertex_colors`) are kept in every format; a texture only in GLB.
    """
    path = Path(path)
    kind = mesh_format(path, format)
    if getattr(mesh.visual, "kind", None) == "texture" and kind != "glb":
        raise MeshError(f"{path}: a textured mesh can only be written as .glb (the texture embedded)")
    if kind == "ply":
        return atomic_write(path, lambda file: mesh.export(file, file_type="ply", encoding="binary"))
    if kind == "glb":
        return atomic_write(path, lambda file: file.write(mesh.export(file_type="glb")))
    text = trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_texture=False)
    return atomic_write(path, lambda file: file.write(text.encode()))
