"""Multi-resolution hash grid encoding (Müller et al. 2022, instant-ngp), with a plain PyTorch reference.

Domain: inputs x in [-bound, bound]^D are mapped to u = (x + bound) / (2 bound) in [0, 1]^D. With the
default bound = 1 the grid covers the cube around the unit sphere of the normalised frame, where the
scene lives. Level l has resolution R_l = floor(N_min * b^l) cells per axis, with the geometric growth
factor b = exp((ln N_max - ln N_min) / (L - 1)), and (R_l + 1)^D vertices. A level whose vertices fit the
table (2^T entries) is indexed densely (one entry per vertex, no collisions); a finer level is indexed by
the instant-ngp spatial hash (XOR of the integer corner coordinates times the primes 1, 2654435761,
805459861, ..., modulo the table size). Features are interpolated from the 2^D corners of the cell
(trilinear, or with the smoothstep of the fractional position); the cell is found with floor, not
truncation. Outside the domain the coordinates are clamped to its faces: the features extend constantly
and their gradient with respect to x is zero there (the raw input, when included, still varies).

Backends: `torch` (this module, the reference; twice differentiable with respect to x, so the eikonal
loss trains the table), `fused` (NSR's Triton kernel in `nsr.accel.hashgrid_triton`, CUDA only: forward
and first-order backward to the table and the input; pair it with the SDF field's finite-difference
gradient), `tcnn` (tiny-cuda-nn's hash grid when installed; its level geometry is instant-ngp's, not
bit-identical to ours), `auto` (fused when CUDA and Triton are present, else tcnn, else torch).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from nsr import checks
from nsr.accel.hashing import PRIMES, primes_on
from nsr.encodings.base import Encoding, EncodingError

if TYPE_CHECKING:
    from nsr.encodings.nffb import NFFBConfig

logger = logging.getLogger(__name__)


def check_grid_levels(config: HashGridConfig | NFFBConfig) -> None:
    """The checks of a multi-resolution grid's fields, shared by the hash grid and the filter bank."""
    checks.positive("num_levels", config.num_levels)
    checks.positive("features_per_level", config.features_per_level)
    checks.in_range("log2_table_size", config.log2_table_size, 1, 30)
    checks.positive("base_resolution", config.base_resolution)
    checks.at_least(
        "finest_resolution", config.finest_resolution, config.base_resolution, "the base resolution"
    )
    checks.positive("bound", config.bound)
    checks.in_range("start_levels", config.start_levels, 0, config.num_levels, "0 = all levels")
    checks.fraction("unlock_every", config.unlock_every)


@dataclass
class HashGridConfig:
    """Multi-resolution hash grid: L levels of F features, tables of 2^T entries, inputs in [-bound, bound]^D."""

    kind: Literal["hashgrid"] = "hashgrid"
    num_levels: int = 16
    """L, the number of resolution levels."""
    features_per_level: int = 2
    """F, features stored per table entry (1, 2, 4 or 8 for the fused kernel)."""
    log2_table_size: int = 19
    """T: each level's table has at most 2^T entries (a level that fits is indexed densely)."""
    base_resolution: int = 16
    """N_min, cells per axis of the coarsest level."""
    finest_resolution: int = 2048
    """N_max, cells per axis of the finest level; growth factor b = exp((ln N_max - ln N_min) / (L - 1))."""
    bound: float = 1.0
    """Inputs in [-bound, bound]^D map to the grid (bound = 1: the cube around the normalised unit sphere)."""
    interpolation: Literal["linear", "smoothstep"] = "linear"
    """Corner weights: (tri)linear in the fractional position, or linear in its smoothstep."""
    include_input: bool = True
    """Put the raw input first in the output (needed for the SDF field's geometric initialisation)."""
    init_scale: float = 1e-4
    """Table entries start uniform in [-init_scale, init_scale]."""
    backend: Literal["torch", "fused", "tcnn", "auto"] = "auto"
    """`torch` reference, `fused` Triton kernel (CUDA), `tcnn` tiny-cuda-nn, `auto` the fastest available."""
    start_levels: int = 0
    """Coarse-to-fine: levels active at the start (0 = all levels from the start)."""
    unlock_every: float = 0.0
    """Coarse-to-fine: one more level is unlocked every this fraction of the run (masked levels output
    zero; 0 = only `start_levels` ever)."""
    tv_samples: int = 4096
    """Vertices sampled per hashed level by `total_variation` (dense levels are summed exactly)."""

    def validate(self) -> None:
        check_grid_levels(self)
        checks.non_negative("init_scale", self.init_scale)
        checks.positive("tv_samples", self.tv_samples)

    def build(self, in_dim: int) -> HashGrid:
        return HashGrid(in_dim, self)


def level_resolutions(config: HashGridConfig) -> list[int]:
    """Cells per axis of each level: floor(N_min * b^l), b = exp((ln N_max - ln N_min) / (L - 1))."""
    n, lo, hi = config.num_levels, config.base_resolution, config.finest_resolution
    if n < 1 or lo < 1 or hi < lo:
        raise EncodingError(
            f"hash grid needs num_levels >= 1 and 1 <= base_resolution <= finest_resolution "
            f"(got {n}, {lo}, {hi})"
        )
    growth = math.exp((math.log(hi) - math.log(lo)) / (n - 1)) if n > 1 else 1.0
    # The small epsilon makes the finest level exactly N_max despite rounding (511.99... -> 512).
    return [math.floor(lo * growth**level + 1e-6) for level in range(n)]


def resolve_backend(requested: str) -> str:
    """`auto` -> `fused` (CUDA + Triton), else `tcnn` (installed), else `torch`; others unchanged."""
    from nsr.accel.probe import has_cuda, has_tcnn, has_triton

    if requested != "auto":
        return requested
    if has_cuda() and has_triton():
        return "fused"
    if has_cuda() and has_tcnn():
        return "tcnn"
    return "torch"


def hashgrid_torch(
    x: torch.Tensor,
    table: torch.Tensor,
    resolutions: torch.Tensor,
    offsets: torch.Tensor,
    dense: torch.Tensor,
    hash_mask: int,
    bound: float,
    smoothstep: bool = False,
) -> torch.Tensor:
    """Reference lookup of M levels, twice differentiable in x and linear in the table.

    Args:
        x: (N, D) points in [-bound, bound]^D (clamped to it).
        table: (E, F) all levels' entries, level l starting at row offsets[l].
        resolutions: (M,) int64 cells per axis R_l.
        offsets: (M,) int64 first row of each level.
        dense: (M,) bool, the level is indexed densely (its (R_l + 1)^D vertices fit its rows).
        hash_mask: table size - 1 (a power of two minus one) for hashed levels.

    Returns:
        (N, M, F) interpolated features.
    """
    d = x.shape[1]
    if d > len(PRIMES):
        raise EncodingError(f"hash grid supports up to {len(PRIMES)} input dimensions, got {d}")
    u = ((x + bound) / (2 * bound)).clamp(0.0, 1.0)
    res = resolutions.to(x.dtype)[None, :, None]  # (1, M, 1)
    p = u[:, None, :] * res  # (N, M, D)
    cell = torch.minimum(torch.floor(p), res - 1)
    frac = p - cell
    cell = cell.long()
    s = frac * frac * (3 - 2 * frac) if smoothstep else frac
    # Per axis, the lower (0) and upper (1) corner: (N, M, D, 2). The 2^D corners are combined by
    # broadcasting (corner index b0 + 2 b1 + 4 b2), never materialising (N, M, 2^D, D) coordinates.
    coords = torch.stack([cell, cell + 1], -1)
    strides = (resolutions[:, None] + 1) ** torch.arange(d, device=x.device)  # (M, D)
    primes = primes_on(x.device)[:d]
    index_dense = _combine(coords * strides[None, :, :, None], torch.add)
    index_hash = _combine(coords * primes[None, None, :, None], torch.bitwise_xor) & hash_mask
    index = torch.where(dense[None, :, None], index_dense, index_hash) + offsets[None, :, None]  # (N, M, C)
    weights = _combine(torch.stack([1 - s, s], -1), torch.mul)  # (N, M, C)
    features = table[index]  # (N, M, C, F)
    return (weights[..., None] * features).sum(2)


def _combine(per_axis: torch.Tensor, op) -> torch.Tensor:
    """(N, M, D, 2) per-axis corner terms -> (N, M, 2^D), term of corner b0 + 2 b1 + ... = op over axes."""
    out = per_axis[:, :, 0, :]
    for axis in range(1, per_axis.shape[2]):
        out = op(per_axis[:, :, axis, :, None], out[:, :, None, :]).flatten(2)
    return out


class HashGrid(Encoding):
    """x (N, D) -> (N, D * include_input + L * F): [x, level_0 (F), ..., level_{L-1} (F)]."""

    def __init__(self, in_dim: int, config: HashGridConfig) -> None:
        super().__init__()
        self.config = config
        self.in_dim = in_dim
        self.includes_input = config.include_input
        self.num_levels = config.num_levels
        self.features_per_level = config.features_per_level
        self.out_dim = in_dim * int(config.include_input) + config.num_levels * config.features_per_level
        self.resolutions = level_resolutions(config)
        self.table_size = 2**config.log2_table_size
        if config.bound <= 0:
            raise EncodingError(f"hash grid bound must be positive, got {config.bound}")
        if in_dim > len(PRIMES):
            raise EncodingError(f"hash grid supports up to {len(PRIMES)} input dimensions, got {in_dim}")
        vertices = [(r + 1) ** in_dim for r in self.resolutions]
        self.dense_levels = [v <= self.table_size for v in vertices]
        sizes = [v if fits else self.table_size for v, fits in zip(vertices, self.dense_levels)]
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + size)
        self.level_offsets = offsets
        self.register_buffer("_res", torch.tensor(self.resolutions, dtype=torch.long), persistent=False)
        self.register_buffer("_offsets", torch.tensor(offsets[:-1], dtype=torch.long), persistent=False)
        self.register_buffer("_dense", torch.tensor(self.dense_levels, dtype=torch.bool), persistent=False)
        self.active_levels = self._active_at(0)
        self.backend = resolve_backend(config.backend)
        self._backend_requested = config.backend
        if config.backend == "auto":
            logger.info("hash grid backend: auto picked %r", self.backend)
        self.tcnn_grid: nn.Module | None = None
        if self.backend == "tcnn":
            from nsr.accel.probe import has_tcnn
            from nsr.accel.tcnn_grid import make_tcnn_hashgrid

            if not has_tcnn():
                raise EncodingError(
                    "hash grid backend 'tcnn' needs tiny-cuda-nn's torch bindings (tinycudann), which are "
                    "not installed or found no CUDA device; use backend 'fused', 'torch' or 'auto'"
                )

            growth = math.exp(
                (math.log(config.finest_resolution) - math.log(config.base_resolution))
                / max(1, config.num_levels - 1)
            )
            self.tcnn_grid = make_tcnn_hashgrid(
                in_dim,
                num_levels=config.num_levels,
                features_per_level=config.features_per_level,
                log2_table_size=config.log2_table_size,
                base_resolution=config.base_resolution,
                per_level_scale=growth,
                smoothstep=config.interpolation == "smoothstep",
            )
            self.table = None
        else:
            if self.backend == "fused":
                from nsr.accel.probe import has_triton

                if not has_triton():
                    raise EncodingError(
                        "hash grid backend 'fused' needs Triton (pip install triton, on a CUDA machine); "
                        "use backend 'torch' or 'auto'"
                    )
                if config.features_per_level not in (1, 2, 4, 8) or in_dim not in (2, 3):
                    raise EncodingError(
                        "the fused hash grid supports features_per_level in 1, 2, 4, 8 and 2-D or 3-D inputs "
                        f"(got F={config.features_per_level}, D={in_dim}); use backend 'torch'"
                    )
            table = torch.empty(offsets[-1], config.features_per_level)
            table.uniform_(-config.init_scale, config.init_scale)
            self.table = nn.Parameter(table)

    # -- schedule -------------------------------------------------------------------------------
    def _active_at(self, progress: float) -> int:
        c = self.config
        if c.start_levels <= 0 or c.start_levels >= c.num_levels:
            return c.num_levels
        if c.unlock_every <= 0:
            return c.start_levels
        # The small tolerance keeps k * unlock_every, reached exactly, from rounding down to k - 1.
        return min(c.num_levels, c.start_levels + math.floor(progress / c.unlock_every + 1e-6))

    def set_progress(self, progress: float) -> None:
        """Coarse-to-fine: unlock one level every `unlock_every` of the run after `start_levels`."""
        self.active_levels = self._active_at(progress)

    def schedule_key(self) -> tuple:
        return (self.active_levels,)

    def finite_difference_step(self) -> float:
        """Half a cell of the finest active level, in input units (Neuralangelo's schedule)."""
        return self.config.bound / self.resolutions[self.active_levels - 1]

    def require_double_backward(self) -> None:
        """Called by an SDF field that differentiates its gradient (analytic eikonal term).

        The fused kernel is first-order only: an explicit `fused` request is an error, `auto` falls
        back to the torch reference.
        """
        if self.backend != "fused":
            return
        if self._backend_requested == "auto":
            self.backend = "torch"
            logger.info(
                "hash grid backend: auto picked 'torch' because the SDF field's analytic gradient needs "
                "double backward (use gradient='finite_difference' for the fused kernel)"
            )
            return
        raise EncodingError(
            "the fused hash grid kernel is first-order only, so the analytic eikonal gradient cannot train "
            "its table: set the SDF field's gradient to 'finite_difference' "
            "(--model.sdf.gradient finite_difference) or use backend 'torch'"
        )

    # -- lookup ---------------------------------------------------------------------------------
    def level_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) points in [-bound, bound]^D -> (N, L, F) features; levels not yet unlocked are zero."""
        n, active = x.shape[0], self.active_levels
        if self.backend == "tcnn":
            u = ((x + self.config.bound) / (2 * self.config.bound)).clamp(0.0, 1.0)
            # tiny-cuda-nn lives on CUDA: CPU inputs (e.g. the SDF field's init) go there and back.
            device = next(self.tcnn_grid.parameters()).device
            out = self.tcnn_grid(u.float().to(device)).to(x.device, x.dtype)
            out = out.view(n, self.num_levels, self.features_per_level)
            if active < self.num_levels:
                mask = torch.arange(self.num_levels, device=x.device) < active
                out = out * mask[None, :, None].to(out.dtype)
            return out
        if self.backend == "fused" and x.is_cuda:
            from nsr.accel.hashgrid_triton import hashgrid_fused

            return hashgrid_fused(
                x,
                self.table,
                self._res,
                self._offsets,
                self._dense,
                hash_mask=self.table_size - 1,
                bound=self.config.bound,
                smoothstep=self.config.interpolation == "smoothstep",
                num_active=active,
            )
        out = hashgrid_torch(
            x,
            self.table,
            self._res[:active],
            self._offsets[:active],
            self._dense[:active],
            hash_mask=self.table_size - 1,
            bound=self.config.bound,
            smoothstep=self.config.interpolation == "smoothstep",
        )
        if active < self.num_levels:
            pad = out.new_zeros(n, self.num_levels - active, self.features_per_level)
            out = torch.cat([out, pad], dim=1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.level_features(x).flatten(1)
        return torch.cat([x, features], dim=-1) if self.config.include_input else features

    # -- regulariser ----------------------------------------------------------------------------
    def total_variation(self) -> torch.Tensor:
        """Mean over active levels of the mean squared feature difference between neighbouring vertices.

        For a dense level the mean runs over every pair of vertices adjacent along an axis (exact);
        for a hashed level over `tv_samples` random vertex pairs (an unbiased estimate of the same mean
        over the level's virtual grid, colliding entries included).
        """
        if self.table is None:
            raise EncodingError("total_variation needs the table of the torch or fused backend, not tcnn")
        d, f = self.in_dim, self.features_per_level
        terms = []
        for level in range(self.active_levels):
            r, start = self.resolutions[level], self.level_offsets[level]
            if self.dense_levels[level]:
                grid = self.table[start : start + (r + 1) ** d].view(*([r + 1] * d), f)
                diffs = [grid.diff(dim=axis).pow(2).sum(-1).mean() for axis in range(d)]
                terms.append(torch.stack(diffs).mean())
                continue
            m = self.config.tv_samples
            corner = torch.randint(0, r, (m, d), device=self.table.device)
            neighbour = corner[:, None, :] + torch.eye(d, dtype=torch.long, device=corner.device)  # (m, d, d)
            a = self._hash_rows(corner, level)
            b = self._hash_rows(neighbour.reshape(-1, d), level).view(m, d)
            terms.append((self.table[b] - self.table[a][:, None, :]).pow(2).sum(-1).mean())
        return torch.stack(terms).mean()

    def _hash_rows(self, corners: torch.Tensor, level: int) -> torch.Tensor:
        """(K, D) integer vertices of a hashed level -> (K,) table rows."""
        primes = primes_on(corners.device)[: self.in_dim]
        hashed = corners * primes
        index = hashed[:, 0]
        for axis in range(1, self.in_dim):
            index = index ^ hashed[:, axis]
        return (index & (self.table_size - 1)) + self.level_offsets[level]


__all__ = ["PRIMES", "HashGrid", "HashGridConfig", "hashgrid_torch", "level_resolutions", "resolve_backend"]
