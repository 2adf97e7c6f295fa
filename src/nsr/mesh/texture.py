"""UV-textured meshes: xatlas cuts the mesh into charts, a colour function is baked into the texture.

Every texel covered by a triangle in UV space gets the colour of the surface point it maps to (barycentric
interpolation of the triangle's corners, `colour_fn` evaluated there); the texels between charts take the
colour of the nearest covered texel, so filtering and mipmaps do not bleed the background into the seams.
Texel (row r, column c) of a size x size image holds UV ((c + 0.5) / size, 1 - (r + 0.5) / size): the
origin at the bottom left, as trimesh's `TextureVisuals` reads it (and writes it to GLB).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh
from PIL import Image, ImageDraw
from scipy import ndimage

from nsr.accel.uv_atlas import INSTALL_HINT, has_xatlas, unwrap
from nsr.mesh.errors import MeshError

ColourFn = Callable[[np.ndarray], np.ndarray]
"""Maps (M, 3) surface points (the mesh's coordinates) to (M, 3) RGB in [0, 1]."""


def check_texture_support() -> None:
    """Raise MeshError, with the install line, when the UV unwrapper (xatlas) is missing."""
    if not has_xatlas():
        raise MeshError(f"textured meshes need xatlas: {INSTALL_HINT}")


def texture_mesh(mesh: trimesh.Trimesh, colour_fn: ColourFn, size: int = 1024) -> trimesh.Trimesh:
    """The mesh with UV coordinates and a baked size x size texture (see the module docstring).

    Vertices on chart seams are duplicated; positions and faces are otherwise the input's.

    Raises:
        MeshError: xatlas is missing (with the install line).
    """
    check_texture_support()
    if size < 8:
        raise ValueError(f"the texture needs at least 8 x 8 texels, got {size}")
    vmapping, faces, uv = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces), resolution=size)
    vertices = np.asarray(mesh.vertices)[vmapping]
    face_of = rasterise(uv, faces, size)
    rows, cols = np.nonzero(face_of >= 0)
    triangles = faces[face_of[rows, cols]]
    texel_uv = np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=1)
    weights = barycentric(texel_uv, uv[triangles])
    points = np.einsum("mk,mkd->md", weights, vertices[triangles])
    image = np.zeros((size, size, 3), dtype=np.float32)
    image[rows, cols] = colour_fn(points)
    _, (near_rows, near_cols) = ndimage.distance_transform_edt(face_of < 0, return_indices=True)
    image = image[near_rows, near_cols]
    texture = Image.fromarray(np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8))
    return trimesh.Trimesh(
        vertices=vertices,
        faces=faces,
        visual=trimesh.visual.TextureVisuals(uv=uv, image=texture),
        process=False,
    )


def rasterise(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """(size, size) int64: the triangle covering each texel's centre in UV space, -1 where none does."""
    canvas = Image.new("I", (size, size), -1)
    draw = ImageDraw.Draw(canvas)
    corners = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], axis=1)  # pixel-corner coordinates
    for index, face in enumerate(faces):
        draw.polygon([tuple(corners[vertex]) for vertex in face], fill=index, outline=index)
    return np.asarray(canvas, dtype=np.int64)


def barycentric(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(M, 3) barycentric weights of (M, 2) points in (M, 3, 2) triangles, clamped into the triangle (a
    texel whose centre lies just outside its triangle takes the nearest point of its edge)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denominator = d00 * d11 - d01 * d01
    safe = np.where(np.abs(denominator) > 1e-20, denominator, 1.0)
    v = np.where(np.abs(denominator) > 1e-20, (d11 * d20 - d01 * d21) / safe, 1.0 / 3.0)
    w = np.where(np.abs(denominator) > 1e-20, (d00 * d21 - d01 * d20) / safe, 1.0 / 3.0)
    weights = np.clip(np.stack([1.0 - v - w, v, w], axis=1), 0.0, None)
    return weights / np.maximum(weights.sum(1, keepdims=True), 1e-12)
