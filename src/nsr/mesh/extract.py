"""Marching-cubes mesh extraction from an SDF, with a coarse-to-fine narrow band.

Conventions: the SDF is negative inside and positive outside; the grid is `resolution` points per
axis over [-bound, bound]^3 (numpy.linspace, endpoints included), indexed (x, y, z) in that order;
extracted meshes live in the same coordinates as the SDF input, with faces wound so that normals
point outward (towards positive SDF).

Narrow band. A dense 512^3 grid is 134 M SDF queries, minutes to hours for an MLP on a CPU. Most
of them are far from the surface, where only the sign matters. `extract_mesh` evaluates the SDF
on a coarse lattice (step `coarse_step` grid cells) and halves the step until it reaches the full
grid. At every level a lattice cell is *active* when its corner values may hide the surface:

    min(corners) < t  and  max(corners) > -t,   t = margin * (cell diagonal)

(a sign change, or some corner closer to the surface than `margin` diagonals). Only the points of
the next finer lattice inside active cells are queried; the others copy the value of a corner of
their inactive cell, which has the sign of the whole cell, so marching cubes sees no crossing
there. For a 1-Lipschitz SDF any margin > 0.5 is exact; learned SDFs are only roughly
1-Lipschitz, hence the default of 2. Marching cubes only produces vertices on edges whose two
ends have opposite signs, and such edges are always inside active cells, whose values are the
true ones, so the narrow-band mesh equals the dense mesh whenever the margin holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage import measure

from nsr.atomic import atomic_write

SdfFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps (M, 3) float32 points to (M,) (or (M, 1)) signed distances, negative inside."""

ProgressFn = Callable[[int, int], None]
"""Called as progress(done, total) with counts of SDF queries; see `extract_mesh`."""

_MIN_COARSE_CELLS = 16
"""The automatic coarse step keeps at least this many cells per axis on the coarsest lattice."""


class MeshError(RuntimeError):
    """The SDF has no usable zero level set inside the extraction bounds."""


def extract_mesh(
    sdf_fn: SdfFn,
    resolution: int = 512,
    bound: float = 1.0,
    chunk_size: int = 262144,
    keep_largest: bool = True,
    narrow_band: bool = True,
    margin: float = 2.0,
    coarse_step: int | None = None,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> trimesh.Trimesh:
    """Extract the zero level set of an SDF with marching cubes.

    Args:
        sdf_fn: maps (M, 3) float32 points on `device` to (M,) SDF values; called under
            torch.no_grad with M <= chunk_size.
        resolution: grid points per axis (the grid has resolution^3 points over the bounds).
        bound: the grid spans [-bound, bound]^3, endpoints included.
        chunk_size: points per sdf_fn call; bounds the memory of one query.
        keep_largest: keep only the connected component of largest area (drops floaters).
        narrow_band: query the full-resolution grid only near the surface (coarse to fine, see
            the module docstring). False queries every grid point.
        margin: narrow-band safety factor, in cell diagonals of each level. Raise it if a learned
            SDF is far from 1-Lipschitz and the narrow-band mesh shows holes the dense one lacks.
        coarse_step: grid cells per coarsest-lattice cell, a power of two (default: the largest
            keeping at least 16 cells per axis, e.g. 16 at resolution 512).
        device: where the query points are created (default CPU).
        progress: optional callable(done, total) called after each chunk with the number of SDF
            queries done and scheduled so far. With the narrow band, `total` grows as finer
            levels are scheduled; the last call has done == total.

    Returns:
        The mesh in SDF coordinates: (V, 3) float64 vertices, (F, 3) faces, normals outward.

    Raises:
        MeshError: the SDF returned NaN/inf, or has no zero crossing inside the bounds.
    """
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    axis = np.linspace(-bound, bound, resolution, dtype=np.float64).astype(np.float32)
    query = _GridQuery(sdf_fn, axis, chunk_size, torch.device(device or "cpu"), progress)

    if narrow_band:
        step = _default_coarse_step(resolution) if coarse_step is None else coarse_step
        if step < 1 or step & (step - 1):
            raise ValueError(f"coarse_step must be a power of two, got {coarse_step}")
        cell = 2.0 * bound / (resolution - 1)
        grid = _narrow_band_grid(query, resolution, step, margin * cell * math.sqrt(3.0))
    else:
        grid = _dense_grid(query, np.arange(resolution))

    mesh = _marching_cubes(grid, bound)
    if keep_largest:
        mesh = largest_component(mesh)
    return mesh


def largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The connected component (faces sharing vertices) with the largest surface area.

    Returns a new mesh without unreferenced vertices; the input is not modified.
    """
    faces = np.asarray(mesh.faces)
    num_vertices = len(mesh.vertices)
    if len(faces) == 0:
        return mesh.copy()
    edges = faces[:, [0, 1, 1, 2]].reshape(-1, 2)
    graph = coo_matrix(
        (np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])),
        shape=(num_vertices, num_vertices),
    )
    num_labels, labels = connected_components(graph, directed=False)
    face_labels = labels[faces[:, 0]]
    areas = np.bincount(face_labels, weights=mesh.area_faces, minlength=num_labels)
    keep = face_labels == int(np.argmax(areas))
    used, new_faces = np.unique(faces[keep], return_inverse=True)
    return trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices)[used],
        faces=new_faces.reshape(-1, 3),
        process=False,
    )


def transform_mesh(mesh: trimesh.Trimesh, matrix: np.ndarray | torch.Tensor) -> trimesh.Trimesh:
    """Apply a 4x4 affine transform (e.g. a dataset's scale_mat, to go to world units).

    Args:
        mesh: the mesh to transform (not modified).
        matrix: (4, 4) affine matrix acting on column vectors [x, y, z, 1].

    Returns:
        A new mesh; faces are reversed if det(matrix[:3, :3]) < 0, so normals keep pointing out.
    """
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"transform_mesh needs a finite (4, 4) matrix, got shape {matrix.shape}")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"transform_mesh needs an affine matrix (last row 0 0 0 1), got {matrix[3]}")
    determinant = float(np.linalg.det(matrix[:3, :3]))
    if abs(determinant) < 1e-12:
        raise ValueError("transform_mesh got a singular matrix (det of the 3x3 part is 0)")
    vertices = np.asarray(mesh.vertices) @ matrix[:3, :3].T + matrix[:3, 3]
    faces = np.asarray(mesh.faces)
    if determinant < 0:
        faces = faces[:, ::-1]
    return trimesh.Trimesh(vertices=vertices, faces=np.ascontiguousarray(faces), process=False)


def save_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write a binary PLY atomically: a temporary file in the same folder, then os.replace.

    A reader never sees a half-written file, and an interrupted write leaves the old file intact.
    Missing parent folders are created. Returns the path written.
    """
    return atomic_write(path, lambda file: mesh.export(file, file_type="ply", encoding="binary"))


class _GridQuery:
    """Evaluates the SDF at grid points given by integer (i, j, k) indices, in chunks."""

    def __init__(
        self,
        sdf_fn: SdfFn,
        axis: np.ndarray,
        chunk_size: int,
        device: torch.device,
        progress: ProgressFn | None,
    ) -> None:
        self.sdf_fn = sdf_fn
        self.axis = axis
        self.chunk_size = chunk_size
        self.device = device
        self.progress = progress
        self.done = 0
        self.total = 0

    def schedule(self, count: int) -> None:
        """Announce `count` more queries (for the progress total)."""
        self.total += count

    @torch.no_grad()
    def __call__(self, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        """SDF at points (axis[i], axis[j], axis[k]); (M,) index arrays -> (M,) float32."""
        points = np.stack([self.axis[i], self.axis[j], self.axis[k]], axis=-1)
        values = self.sdf_fn(torch.from_numpy(points).to(self.device))
        values = values.detach().reshape(-1).float().cpu().numpy()
        if values.shape[0] != points.shape[0]:
            raise ValueError(
                f"sdf_fn returned {values.shape[0]} values for {points.shape[0]} points; "
                "it must map (M, 3) points to (M,) SDF values"
            )
        bad = ~np.isfinite(values)
        if bad.any():
            raise MeshError(
                f"the SDF returned {int(bad.sum())} non-finite values (NaN/inf), e.g. at "
                f"{points[bad][0].tolist()}: the model has diverged; extract from an earlier "
                "checkpoint or lower the learning rate"
            )
        self.done += len(values)
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))
        return values


def _dense_grid(query: _GridQuery, indices: np.ndarray) -> np.ndarray:
    """SDF at every point of the lattice indices x indices x indices; returns (n, n, n) float32."""
    n = len(indices)
    grid = np.empty((n, n, n), dtype=np.float32)
    flat = grid.reshape(-1)
    query.schedule(flat.size)
    for start in range(0, flat.size, query.chunk_size):
        i, j, k = np.unravel_index(np.arange(start, min(start + query.chunk_size, flat.size)), grid.shape)
        flat[start : start + len(i)] = query(indices[i], indices[j], indices[k])
    return grid


def _narrow_band_grid(
    query: _GridQuery, resolution: int, step: int, cell_diagonal_margin: float
) -> np.ndarray:
    """The full (resolution,)^3 grid, true SDF values near the surface and same-sign values elsewhere.

    `cell_diagonal_margin` is margin * (diagonal of one grid cell); a lattice of step s uses s times it.
    """
    indices = _lattice(resolution, step)
    values = _dense_grid(query, indices)
    while step > 1:
        low, high = _cell_range(values)
        threshold = cell_diagonal_margin * step
        active = (low < threshold) & (high > -threshold)
        step //= 2
        fine = _lattice(resolution, step)
        values, indices = _refine(query, values, indices, fine, active), fine
    return values


def _refine(
    query: _GridQuery, values: np.ndarray, coarse: np.ndarray, fine: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Values on the fine lattice: queried inside active coarse cells, copied from a corner elsewhere.

    Args:
        values: (n, n, n) values on the coarse lattice `coarse` (grid indices, increasing).
        coarse, fine: lattice grid indices; coarse is a subset of fine.
        active: (n-1, n-1, n-1) bool, coarse cells whose fine points must be queried.
    """
    # Each fine point copies its lower coarse corner: a corner of every coarse cell containing it.
    lower = np.searchsorted(coarse, fine, side="right") - 1
    out = values[np.ix_(lower, lower, lower)]

    # Fine points in an active coarse cell; a point on a cell boundary belongs to both cells.
    cell = np.minimum(lower, len(coarse) - 2)
    previous = np.where((coarse[cell] == fine) & (cell > 0), cell - 1, cell)
    todo = active
    for dim in range(3):
        todo = todo.take(cell, axis=dim) | todo.take(previous, axis=dim)
    known = np.searchsorted(fine, coarse)
    todo[np.ix_(known, known, known)] = False

    i, j, k = np.nonzero(todo)
    del todo
    query.schedule(len(i))
    for start in range(0, len(i), query.chunk_size):
        stop = start + query.chunk_size
        ci, cj, ck = i[start:stop], j[start:stop], k[start:stop]
        out[ci, cj, ck] = query(fine[ci], fine[cj], fine[ck])
    return out


def _lattice(resolution: int, step: int) -> np.ndarray:
    """Grid indices 0, step, 2 step, ... plus the last index (the last cell may be shorter)."""
    indices = np.arange(0, resolution, step)
    if indices[-1] != resolution - 1:
        indices = np.append(indices, resolution - 1)
    return indices


def _default_coarse_step(resolution: int) -> int:
    """The largest power of two leaving at least _MIN_COARSE_CELLS cells per axis (at least 1)."""
    step = 1
    while (resolution - 1) / (2 * step) >= _MIN_COARSE_CELLS:
        step *= 2
    return step


def _cell_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max over the 8 corners of every cell: (n, n, n) -> two (n-1, n-1, n-1) arrays."""
    low, high = values, values
    for dim in range(3):
        n = low.shape[dim]
        head = [slice(None)] * 3
        tail = [slice(None)] * 3
        head[dim], tail[dim] = slice(0, n - 1), slice(1, n)
        low = np.minimum(low[tuple(head)], low[tuple(tail)])
        high = np.maximum(high[tuple(head)], high[tuple(tail)])
    return low, high


def _marching_cubes(grid: np.ndarray, bound: float) -> trimesh.Trimesh:
    """Zero level set of a (n, n, n) grid over [-bound, bound]^3, faces wound outward."""
    low, high = float(grid.min()), float(grid.max())
    if not (low < 0.0 < high):
        side = "positive (outside)" if low >= 0.0 else "negative (inside)"
        raise MeshError(
            f"the SDF has no zero crossing inside [-{bound}, {bound}]^3: every grid value is {side}, "
            f"range [{low:.4g}, {high:.4g}]. Usually training diverged or ran too few steps, or the "
            "object lies outside the bounds (check the normalisation / scale_mat and `bound`)"
        )
    # skimage winds "descent" faces so that normals point towards increasing values (outside).
    try:
        vertices, faces, _, _ = measure.marching_cubes(grid, level=0.0, gradient_direction="descent")
    except RuntimeError as error:  # only degenerate triangles: a surface thinner than round-off
        raise MeshError(f"marching cubes found no triangle of positive area ({error})") from error
    spacing = 2.0 * bound / (grid.shape[0] - 1)
    vertices = vertices.astype(np.float64) * spacing - bound
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=True)
