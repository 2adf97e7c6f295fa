"""Marching-cubes mesh extraction from an SDF, block by block, with a coarse-to-fine narrow band.

Conventions: the SDF is negative inside and positive outside; the grid is `resolution` points per
axis over [-bound, bound]^3 (numpy.linspace, endpoints included), indexed (x, y, z) in that order;
extracted meshes live in the same coordinates as the SDF input, with faces wound so that normals
point outward (towards positive SDF).

Blocks. The grid is cut into blocks of `block_size` cells per axis, at multiples of it (the last
block along an axis is shorter), as Neuralangelo and sdfstudio do. Neighbouring blocks share their
boundary plane of grid points, so every cell belongs to exactly one block, and each block is
evaluated and marched on its own; only the finished triangles are kept. A vertex on a shared plane
is computed by both blocks from the same two grid values at the same local coordinates along the
plane (skimage interpolates symmetrically in an edge's two ends), so the two copies are
bit-identical in global grid units (the block's integer offset is added in float64) and merge into
one: the stitched mesh is the one-shot mesh up to vertex order (and the float32 rounding of
skimage's output, which is finer in a block). Memory is one block's grid plus the mesh, whatever
the resolution; `estimate_memory` says how much.

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
true ones, so the narrow-band mesh equals the dense mesh whenever the margin holds. The coarse
lattice is global and evaluated once; the block size is a multiple of its step, so inside a block
every level's lattice is the global one's and the values are those of a one-shot narrow band. A
block without an active coarse cell holds no surface and is skipped without a query.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage import measure

from nsr.mesh.errors import MeshError
from nsr.mesh.export import save_mesh  # re-exported: callers import it from here

logger = logging.getLogger(__name__)

__all__ = ["MeshError", "estimate_memory", "extract_mesh", "largest_component", "save_mesh", "transform_mesh"]

SdfFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps (M, 3) float32 points to (M,) (or (M, 1)) signed distances, negative inside."""

ProgressFn = Callable[[int, int], None]
"""Called as progress(done, total) with counts of SDF queries; see `extract_mesh`."""

_MIN_COARSE_CELLS = 16
"""The automatic coarse step keeps at least this many cells per axis on the coarsest lattice."""

DEFAULT_BLOCK_SIZE = 128
"""Grid cells per block edge: one block's values are 129^3 float32, 9 MB (43 MB of working memory at
most). Smaller blocks skip more empty space but cut the SDF queries into smaller batches."""

_BLOCK_BYTES_PER_POINT = 20
"""Peak working bytes per grid point of one block (values and their refined copy, the boolean masks of
points to query and their flat indices, marching cubes): the worst case, a block that is active everywhere."""
_MESH_BYTES_PER_FACE = 400
"""Peak bytes per triangle while the block meshes are stitched, merged and the largest component kept
(350-380 measured with tracemalloc on spheres at 512^3 and 1024^3; tests/mesh/test_extract.py checks the
estimate against the peak)."""
_FACES_PER_AREA = 3.0
"""Marching-cubes triangles per unit of surface area in grid cells squared (measured on spheres)."""

SPHERE_REFUSE_FRACTION = 0.9
"""`clip_radius`: a mesh with at least this fraction of its area on the clipping sphere is refused."""
SPHERE_WARN_FRACTION = 1e-3
"""`clip_radius`: a mesh with more than this fraction of its area on the clipping sphere is warned about."""


@dataclass
class MemoryEstimate:
    """Peak memory of `extract_mesh` at one resolution, the SDF network's own evaluation excluded (that
    is set by `chunk_size` and the network)."""

    resolution: int
    """Grid points per axis."""
    block_size: int
    """Grid cells per block edge actually used (a multiple of the coarse step)."""
    blocks: int
    """Number of blocks (blocks per axis, cubed)."""
    block_bytes: int
    """Working memory of one block while it is refined and marched."""
    faces: int
    """Expected number of triangles."""
    mesh_bytes: int
    """Memory of the mesh while the blocks' pieces are stitched, merged and filtered."""

    @property
    def total_bytes(self) -> int:
        """Estimated peak: one block's working memory plus the mesh."""
        return self.block_bytes + self.mesh_bytes

    def describe(self) -> str:
        """One line for the user."""
        return (
            f"marching cubes at {self.resolution}^3 in {self.blocks} block{'s' if self.blocks > 1 else ''} "
            f"of {self.block_size}^3 cells: "
            f"~{_gigabytes(self.total_bytes)} peak ({_gigabytes(self.block_bytes)} per block, "
            f"~{self.faces / 1e6:.2g} M triangles {_gigabytes(self.mesh_bytes)}), plus the SDF network"
        )


def estimate_memory(
    resolution: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
    surface_area: float | None = None,
    bound: float = 1.0,
    coarse_step: int | None = None,
    narrow_band: bool = True,
) -> MemoryEstimate:
    """How much memory `extract_mesh` needs at `resolution`, before evaluating anything.

    Args:
        surface_area: area of the surface to extract, in the SDF's units (default: the sphere inscribed
            in the grid, radius `bound`: most objects inside the bounds have less area, crumpled ones
            more). `extract_mesh(on_estimate=...)` gives an estimate from the SDF's own coarse lattice.
        The other arguments are those of `extract_mesh`.
    """
    if surface_area is None:
        surface_area = 4.0 * math.pi * bound**2
    cell = 2.0 * bound / (resolution - 1)
    faces = int(_FACES_PER_AREA * surface_area / cell**2)
    return _estimate(resolution, _block_cells(resolution, block_size, coarse_step, narrow_band), faces)


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
    block_size: int = DEFAULT_BLOCK_SIZE,
    clip_radius: float | None = None,
    on_estimate: Callable[[MemoryEstimate], None] | None = None,
) -> trimesh.Trimesh:
    """Extract the zero level set of an SDF with marching cubes, one block at a time.

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
            queries done and scheduled so far. `total` grows as blocks and finer levels are
            scheduled; the last call has done == total.
        block_size: grid cells per block edge (rounded up to a multiple of the coarse step); sets the
            working memory (`estimate_memory`), not the result.
        clip_radius: intersect the SDF with the sphere of this radius at the origin (a run's bounding
            sphere: nothing outside it is rendered or supervised, so zero crossings there are not the
            object), then check how much of the mesh is that sphere itself, i.e. where the SDF is still
            negative at the sphere: all of it (at least SPHERE_REFUSE_FRACTION of the area) raises
            MeshError, part of it is a warning through logging.
        on_estimate: called once, before the fine levels, with the memory estimate for this SDF (its
            surface area measured on the coarse lattice).

    Returns:
        The mesh in SDF coordinates: (V, 3) float64 vertices, (F, 3) faces, normals outward.

    Raises:
        MeshError: the SDF returned NaN/inf, has no zero crossing inside the bounds, or (with
            `clip_radius`) is negative up to the clipping sphere nearly everywhere.
    """
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    field_fn = sdf_fn
    if clip_radius is not None:
        if not clip_radius > 0:
            raise ValueError(f"clip_radius must be positive, got {clip_radius}")

        def sdf_fn(x: torch.Tensor) -> torch.Tensor:
            return torch.maximum(field_fn(x).reshape(-1), x.norm(dim=-1) - clip_radius)

    axis = np.linspace(-bound, bound, resolution, dtype=np.float64).astype(np.float32)
    device = torch.device(device or "cpu")
    query = _GridQuery(sdf_fn, axis, chunk_size, device, progress)
    cell = 2.0 * bound / (resolution - 1)
    blocks = _Blocks(query, resolution, coarse_step, narrow_band, block_size, margin * cell * math.sqrt(3.0))
    if on_estimate is not None:
        on_estimate(_estimate(resolution, blocks.cells, blocks.expected_faces()))

    pieces: list[tuple[np.ndarray, np.ndarray]] = []
    for lo, values in blocks:
        if not (values.min() <= 0.0 < values.max()):
            continue  # marching cubes counts 0 as inside: no cell of this block has both classes
        try:
            vertices, faces, _, _ = measure.marching_cubes(values, level=0.0, gradient_direction="descent")
        except RuntimeError:  # only degenerate triangles: a surface thinner than round-off
            continue
        # skimage winds "descent" faces so that normals point towards increasing values (outside).
        pieces.append((vertices.astype(np.float64) + np.asarray(lo, dtype=np.float64), faces))

    low, high = blocks.low, blocks.high
    if not (low < 0.0 < high):
        side = "positive (outside)" if low >= 0.0 else "negative (inside)"
        raise MeshError(
            f"the SDF has no zero crossing inside [-{bound}, {bound}]^3: every grid value is {side}, "
            f"range [{low:.4g}, {high:.4g}]. Usually training diverged or ran too few steps, or the "
            "object lies outside the bounds (check the normalisation / scale_mat and `bound`)"
        )
    if not pieces:
        raise MeshError(
            "marching cubes found no triangle of positive area (a surface thinner than round-off)"
        )
    mesh = _stitch(pieces, cell, bound)
    del pieces
    if keep_largest:
        mesh = largest_component(mesh)
    if clip_radius is not None:
        _check_bounding_sphere(mesh, clip_radius, cell)
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
        self.expected = 0
        """An estimate of the total queries (what `progress` shows as the total while it exceeds `total`)."""

    def schedule(self, count: int) -> None:
        """Announce `count` more queries (for the progress total)."""
        self.total += count

    def finish(self) -> None:
        """Report the last count: done == total."""
        self.total = self.expected = self.done
        if self.progress is not None:
            self.progress(self.done, self.done)

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
            self.progress(self.done, max(self.total, self.done, self.expected))
        return values


class _Blocks:
    """The grid's blocks, in order: iterating yields (lower corner grid index (3,), values) per block, the
    values on the block's full-resolution grid (narrow band: true near the surface, same-sign copies
    elsewhere). Blocks without an active coarse cell are skipped. Tracks the range of all values."""

    def __init__(
        self,
        query: _GridQuery,
        resolution: int,
        coarse_step: int | None,
        narrow_band: bool,
        block_size: int,
        cell_diagonal_margin: float,
    ) -> None:
        self.query = query
        self.resolution = resolution
        self.narrow_band = narrow_band
        self.step = _coarse_step(resolution, coarse_step) if narrow_band else 1
        self.cells = _block_cells(resolution, block_size, coarse_step, narrow_band)
        self.cell_diagonal_margin = cell_diagonal_margin
        self.low, self.high = math.inf, -math.inf
        self.coarse = None
        if narrow_band:
            self.coarse_indices = _lattice(resolution, self.step)
            self.coarse = _dense_grid(query, (self.coarse_indices,) * 3)
            self._record(self.coarse)
            low, high = _cell_range(self.coarse)
            threshold = cell_diagonal_margin * self.step
            self.active = (low < threshold) & (high > -threshold)
            self.crossing_cells = int(np.count_nonzero((low <= 0.0) & (high > 0.0)))
        self.blocks = self._corners()
        if not narrow_band:
            query.expected = sum(math.prod(b - a + 1 for a, b in zip(lo, hi)) for lo, hi in self.blocks)

    def expected_faces(self) -> int:
        """Triangles expected at full resolution: from the coarse cells the surface crosses (narrow band),
        else from the area of the sphere inscribed in the grid."""
        if self.coarse is None:
            return estimate_memory(self.resolution, self.cells, narrow_band=False).faces
        # A surface crosses about area / cell^2 * 1.5 cells of any size (1.5: the mean of |nx|+|ny|+|nz|).
        area_in_cells = self.crossing_cells / 1.5 * self.step**2
        return int(_FACES_PER_AREA * area_in_cells)

    def _record(self, values: np.ndarray) -> None:
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    def __iter__(self):
        """Yields (lo, values) per block; between blocks, the progress total is re-estimated from the mean
        number of queries per block so far (the blocks left are known, their queries only once refined)."""
        start = self.query.done
        for index, (lo, hi) in enumerate(self.blocks):
            values = self._narrow_band(lo, hi) if self.narrow_band else self._dense(lo, hi)
            self._record(values)
            per_block = (self.query.done - start) / (index + 1)
            self.query.expected = self.query.done + round(per_block * (len(self.blocks) - index - 1))
            yield lo, values
        self.query.finish()

    def _corners(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """(lo, hi) grid indices of the blocks to evaluate: all of them, or (narrow band) those with an
        active coarse cell."""
        last = self.resolution - 1
        starts = range(0, last, self.cells)
        blocks = []
        for lo in ((x, y, z) for x in starts for y in starts for z in starts):
            hi = tuple(min(start + self.cells, last) for start in lo)
            if not self.narrow_band or self._coarse_part(lo, hi)[2].any():
                blocks.append((lo, hi))
        return blocks

    def _coarse_part(self, lo: tuple[int, ...], hi: tuple[int, ...]):
        """The block's part of the coarse lattice: (indices per axis, values, active cells). Its corners are
        lattice points (the block size is a multiple of the coarse step)."""
        first = [start // self.step for start in lo]
        stop = [int(np.searchsorted(self.coarse_indices, end)) + 1 for end in hi]
        indices = tuple(self.coarse_indices[a:b] for a, b in zip(first, stop))
        values = self.coarse[tuple(slice(a, b) for a, b in zip(first, stop))]
        return indices, values, self.active[tuple(slice(a, b - 1) for a, b in zip(first, stop))]

    def _dense(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
        return _dense_grid(self.query, tuple(np.arange(a, b + 1) for a, b in zip(lo, hi)))

    def _narrow_band(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
        indices, values, active = self._coarse_part(lo, hi)
        step = self.step
        while step > 1:
            step //= 2
            fine = tuple(_block_lattice(a, b, step) for a, b in zip(lo, hi))
            values, indices = _refine(self.query, values, indices, fine, active), fine
            if step > 1:
                low, high = _cell_range(values)
                threshold = self.cell_diagonal_margin * step
                active = (low < threshold) & (high > -threshold)
        return values


def _dense_grid(query: _GridQuery, indices: tuple[np.ndarray, ...]) -> np.ndarray:
    """SDF at every point of the lattice indices[0] x indices[1] x indices[2]; returns float32 values."""
    grid = np.empty(tuple(len(index) for index in indices), dtype=np.float32)
    flat = grid.reshape(-1)
    query.schedule(flat.size)
    for start in range(0, flat.size, query.chunk_size):
        i, j, k = np.unravel_index(np.arange(start, min(start + query.chunk_size, flat.size)), grid.shape)
        flat[start : start + len(i)] = query(indices[0][i], indices[1][j], indices[2][k])
    return grid


def _refine(
    query: _GridQuery,
    values: np.ndarray,
    coarse: tuple[np.ndarray, ...],
    fine: tuple[np.ndarray, ...],
    active: np.ndarray,
) -> np.ndarray:
    """Values on the fine lattice: queried inside active coarse cells, copied from a corner elsewhere.

    Args:
        values: values on the coarse lattice coarse[0] x coarse[1] x coarse[2] (grid indices, increasing).
        coarse, fine: per axis, lattice grid indices; coarse[d] is a subset of fine[d].
        active: bool per coarse cell (one less than `values` along each axis): cells whose fine points
            must be queried.
    """
    # Each fine point copies its lower coarse corner: a corner of every coarse cell containing it.
    lower = [np.searchsorted(c, f, side="right") - 1 for c, f in zip(coarse, fine)]
    out = values[np.ix_(*lower)]

    # Fine points in an active coarse cell; a point on a cell boundary belongs to both cells.
    todo = active
    for dim, (c, f, low) in enumerate(zip(coarse, fine, lower)):
        cell = np.minimum(low, len(c) - 2)
        previous = np.where((c[cell] == f) & (cell > 0), cell - 1, cell)
        todo = todo.take(cell, axis=dim) | todo.take(previous, axis=dim)
    todo[np.ix_(*(np.searchsorted(f, c) for f, c in zip(fine, coarse)))] = False

    flat = np.flatnonzero(todo)
    del todo
    query.schedule(len(flat))
    for start in range(0, len(flat), query.chunk_size):
        i, j, k = np.unravel_index(flat[start : start + query.chunk_size], out.shape)
        out[i, j, k] = query(fine[0][i], fine[1][j], fine[2][k])
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


def _block_lattice(lo: int, hi: int, step: int) -> np.ndarray:
    """The global lattice of `step` (see `_lattice`) between grid indices lo and hi, both included; lo is
    a multiple of step, hi a multiple of it or the grid's last index."""
    indices = np.arange(lo, hi + 1, step)
    if indices[-1] != hi:
        indices = np.append(indices, hi)
    return indices


def _coarse_step(resolution: int, coarse_step: int | None) -> int:
    step = _default_coarse_step(resolution) if coarse_step is None else coarse_step
    if step < 1 or step & (step - 1):
        raise ValueError(f"coarse_step must be a power of two, got {coarse_step}")
    return step


def _block_cells(resolution: int, block_size: int, coarse_step: int | None, narrow_band: bool) -> int:
    """Cells per block edge: block_size rounded up to a multiple of the coarse step, at most the grid."""
    step = _coarse_step(resolution, coarse_step) if narrow_band else 1
    cells = -(-block_size // step) * step
    return max(1, min(cells, -(-(resolution - 1) // step) * step))


def _estimate(resolution: int, cells: int, faces: int) -> MemoryEstimate:
    per_axis = -(-(resolution - 1) // cells)
    side = min(cells, resolution - 1) + 1
    return MemoryEstimate(
        resolution=resolution,
        block_size=cells,
        blocks=per_axis**3,
        block_bytes=_BLOCK_BYTES_PER_POINT * side**3,
        faces=faces,
        mesh_bytes=_MESH_BYTES_PER_FACE * faces,
    )


def _gigabytes(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


def _stitch(pieces: list[tuple[np.ndarray, np.ndarray]], cell: float, bound: float) -> trimesh.Trimesh:
    """One mesh from the blocks' (vertices in global grid units, faces); duplicated boundary vertices are
    bit-identical and merged by trimesh's processing."""
    offsets = np.cumsum([0] + [len(vertices) for vertices, _ in pieces[:-1]])
    vertices = np.concatenate([vertices for vertices, _ in pieces])
    faces = np.concatenate([faces + offset for (_, faces), offset in zip(pieces, offsets)])
    return trimesh.Trimesh(vertices=vertices * cell - bound, faces=faces, process=True)


def _check_bounding_sphere(mesh: trimesh.Trimesh, radius: float, cell: float) -> None:
    """Refuse a mesh that is (nearly) all clipping sphere; warn about one that is partly.

    A triangle lies on the sphere, rather than on the field's own surface, when its three vertices are
    on it to within 5% of a cell: marching cubes interpolates the clipped SDF linearly along grid edges,
    which puts the sphere's vertices within ~h^2 / (8 r) of it (under 3% of a cell h at 16^3 and r = 0.8),
    while the field's own surface meets the sphere only along curves, where it crosses it.
    """
    radial = np.abs(np.linalg.norm(np.asarray(mesh.vertices), axis=1) - radius)
    on_sphere = (radial < 0.05 * cell)[np.asarray(mesh.faces)].all(axis=1)
    areas = mesh.area_faces
    fraction = float(areas[on_sphere].sum() / max(areas.sum(), 1e-30))
    if fraction >= SPHERE_REFUSE_FRACTION:
        raise MeshError(
            f"{100 * fraction:.0f}% of the surface is the bounding sphere (radius {radius:g}) itself: the "
            "SDF is negative up to it nearly everywhere, so there is no object to mesh. Usually training "
            "diverged, or the object does not fit the bounding sphere (check the normalisation / scale_mat)"
        )
    if fraction > SPHERE_WARN_FRACTION:
        logger.warning(
            f"warning: {100 * fraction:.1f}% of the mesh's area lies on the bounding sphere (radius "
            f"{radius:g}), where the SDF is still negative: the surface is cut open there (the object "
            "does not fit the sphere, or the SDF has spurious inside regions reaching it)"
        )
