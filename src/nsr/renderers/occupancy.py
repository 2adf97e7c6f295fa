"""An occupancy grid derived from an SDF: where the volume renderer may skip empty space.

A cell of a `res^3` grid over the bounding cube [-R, R]^3 is *occupied* when the surface may cross it or
lie close enough to it to carry rendering weight. For an SDF f with |grad f| <= L (a true SDF has L = 1)
and a point q of a cell whose farthest corner is at distance d(q) from q, no zero of f lies in the cell
when |f(q)| > L d(q). The grid keeps every cell with

    min over evaluated points q of ( |f(q)| - L d(q) )  <=  m / inv_s,

where the margin m / inv_s also keeps the cells within a few logistic scales of the surface (NeuS's
density there is s e^{-s|f|} at most, so m = 6 leaves out weight below e^{-6} of its peak). The evaluated
points are the cell centre (d = half the cell diagonal) and optionally a few random points of the cell
(each with its own d), which catch fields steeper than L between the centre and the surface. With L at
least the field's Lipschitz constant, a cell the surface crosses is never culled.

The renderer uses the grid only to place its samples (`OccupancyGrid.ray_span`): each ray's [near, far]
shrinks to the span of the cells it meets that lie within one cell of an occupied cell. Shapes are
fixed (a fixed number of lookups per ray), so nothing waits on the GPU. The state lives in buffers,
so it is saved with the model that owns the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nsr import checks

SDFFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class OccupancyGridConfig:
    """Empty-space skipping with a grid derived from the SDF (instant-nsr-pl / NeuS2)."""

    enabled: bool = False
    """Build a grid and shrink each ray's sample span to its occupied cells."""
    resolution: int = 64
    """Cells per axis over the bounding cube [-R, R]^3."""
    update_every: int = 16
    """Training steps between two updates (`OccupancyGrid.update_if_due`)."""
    jitter_points: int = 0
    """Random points per cell evaluated at each update besides the centre (catches fields steeper
    than `lipschitz` between the centre and the surface; 0 = the centre only)."""
    lipschitz: float = 1.5
    """Assumed bound of |grad f|: a trained SDF is close to 1 but not exactly; larger keeps more cells."""
    density_margin: float = 6.0
    """Cells within this many logistic scales (1 / inv_s) of the surface are kept as well."""
    chunk_size: int = 262144
    """Points per SDF call during an update."""

    def validate(self) -> None:
        checks.at_least("resolution", self.resolution, 2)
        checks.positive("update_every", self.update_every)
        checks.non_negative("jitter_points", self.jitter_points)
        checks.positive("lipschitz", self.lipschitz)
        checks.non_negative("density_margin", self.density_margin)
        checks.positive("chunk_size", self.chunk_size)

    def build(self, bounding_radius: float) -> OccupancyGrid:
        return OccupancyGrid(self, bounding_radius)


class OccupancyGrid(nn.Module):
    """A boolean grid of occupied cells over [-R, R]^3 (all occupied until the first update).

    Buffers (saved in checkpoints): `occupied` (res, res, res) bool, and `dilated`, the occupied cells
    grown by one cell in every direction (what `ray_span` looks up). Index order is (x, y, z).
    """

    occupied: torch.Tensor
    dilated: torch.Tensor

    def __init__(self, config: OccupancyGridConfig, bounding_radius: float) -> None:
        super().__init__()
        if config.resolution < 1:
            raise ValueError(f"occupancy grid resolution must be positive, got {config.resolution}")
        self.config = config
        self.radius = float(bounding_radius)
        self.resolution = config.resolution
        self.cell_size = 2 * self.radius / config.resolution
        shape = (config.resolution,) * 3
        self.register_buffer("occupied", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("dilated", torch.ones(shape, dtype=torch.bool))

    def cell_centres(self) -> torch.Tensor:
        """(res^3, 3) centres of the cells in `occupied.flatten()` order."""
        res, device = self.resolution, self.occupied.device
        axis = (torch.arange(res, device=device, dtype=torch.float32) + 0.5) * self.cell_size - self.radius
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)
        return grid.reshape(-1, 3)

    @torch.no_grad()
    def update(self, sdf_fn: SDFFunction, inv_s: torch.Tensor | float) -> None:
        """Recompute the grid from the SDF (no gradients; `inv_s` is NeuS's current inverse std)."""
        cfg = self.config
        centres = self.cell_centres()
        half = self.cell_size / 2
        inv_s = torch.as_tensor(inv_s, device=centres.device, dtype=centres.dtype).clamp(1e-6, 1e6)
        threshold = cfg.density_margin / inv_s
        score = self._evaluate(sdf_fn, centres).abs() - cfg.lipschitz * half * math.sqrt(3)
        for _ in range(cfg.jitter_points):
            offset = (torch.rand_like(centres) - 0.5) * self.cell_size
            farthest = (half + offset.abs()).norm(dim=-1)  # distance to the farthest corner of the cell
            value = self._evaluate(sdf_fn, centres + offset).abs() - cfg.lipschitz * farthest
            score = torch.minimum(score, value)
        occupied = (score <= threshold).view(self.occupied.shape)
        self.occupied.copy_(occupied)
        grown = F.max_pool3d(occupied[None, None].float(), kernel_size=3, stride=1, padding=1)[0, 0]
        self.dilated.copy_(grown > 0)

    def update_if_due(self, step: int, sdf_fn: SDFFunction, inv_s: torch.Tensor | float) -> bool:
        """Update at every `update_every`-th step (step 0 included); returns whether it updated."""
        if step % max(1, self.config.update_every) != 0:
            return False
        self.update(sdf_fn, inv_s)
        return True

    def _evaluate(self, sdf_fn: SDFFunction, points: torch.Tensor) -> torch.Tensor:
        chunk = self.config.chunk_size
        return torch.cat([sdf_fn(p) for p in points.split(chunk)])

    def lookup(self, points: torch.Tensor, dilated: bool = False) -> torch.Tensor:
        """(M, 3) -> (M,) bool: the point lies in an occupied cell (False outside the cube)."""
        grid = self.dilated if dilated else self.occupied
        res = self.resolution
        scaled = (points + self.radius) / self.cell_size
        inside = ((scaled >= 0) & (scaled <= res)).all(-1)
        index = scaled.floor().long().clamp(0, res - 1)
        flat = (index[:, 0] * res + index[:, 1]) * res + index[:, 2]
        return grid.flatten()[flat] & inside

    def ray_span(
        self, origins: torch.Tensor, directions: torch.Tensor, near: torch.Tensor, far: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shrink each ray's [near, far] to the part that meets occupied cells (fixed shapes).

        The ray is looked up at 2 res + 1 evenly spaced depths from near to far (a step of at most half
        a cell, since far - near <= 2R) in the dilated grid. If the ray crosses an occupied cell over
        [t_a, t_b], the lookups just before t_a and just after t_b lie within half a cell of that cell,
        hence in its dilation: the first and last dilated hits bracket [t_a, t_b]. A ray that meets no
        occupied cell keeps its bounds.

        Returns:
            near (N,), far (N,) and `any` (N,) bool, the ray meets an occupied cell.
        """
        n = origins.shape[0]
        count = 2 * self.resolution + 1
        steps = torch.linspace(0, 1, count, device=origins.device, dtype=origins.dtype)
        t = near[:, None] + (far - near)[:, None] * steps  # (N, count)
        points = origins[:, None, :] + directions[:, None, :] * t[..., None]
        hits = self.lookup(points.reshape(-1, 3), dilated=True).view(n, count)
        ramp = torch.arange(count, 0, -1, device=origins.device)
        first = torch.argmax(hits * ramp, dim=1)
        last = count - 1 - torch.argmax(hits.flip(1) * ramp, dim=1)
        rows = torch.arange(n, device=origins.device)
        any_hit = hits.any(dim=1)
        return (
            torch.where(any_hit, t[rows, first], near),
            torch.where(any_hit, t[rows, last], far),
            any_hit,
        )

    def occupied_fraction(self) -> torch.Tensor:
        """Fraction of occupied cells (a 0-d tensor, for logging)."""
        return self.occupied.float().mean()
