"""IDR ray tracing of an SDF: bounding sphere, two-sided sphere tracing, sampling + secant refinement.

All functions are batched over rays (no per-ray Python loops) and take the SDF as a callable
`sdf_fn: (M, 3) -> (M,)`, so they work for neural fields and analytic shapes alike.
The tracer runs without gradients; the differentiable surface point is computed afterwards
(see `nsr.renderers.implicit`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import torch

from nsr import checks

logger = logging.getLogger(__name__)

SDFFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SphereTracerConfig:
    """Parameters of the IDR ray tracer (defaults: IDR's published values)."""

    bounding_radius: float = 1.0
    """Radius of the sphere (normalised frame) that contains the object."""
    sdf_threshold: float = 5e-5
    """A point whose SDF is below this counts as on the surface."""
    sphere_tracing_iters: int = 10
    """Sphere-tracing steps from each side of the bounding sphere."""
    line_search_step: float = 0.5
    """Back-off factor when a step lands inside the object."""
    line_step_iters: int = 3
    """Number of back-off halvings."""
    num_samples: int = 100
    """Uniform samples along rays that did not converge."""
    num_secant_steps: int = 8
    """Secant iterations refining a sign change."""
    mask_samples: int = 100
    """Random depths per ray searched for the minimal-SDF point used by the mask loss."""
    mask_search_depth: float | None = None
    """For a ray that hits the surface outside the object mask: how far beyond the hit point the
    minimal-SDF point is searched for (normalised units). None: to the far side of the bounding sphere,
    as IDR does, so the mask loss pushes up the SDF at the deepest point of the ray and carves the
    object from the inside. A finite depth carves it from its visible surface inward instead, so a ray
    of a misaligned camera (trained cameras early in the run) carves near the surface rather than
    through the middle. Measured on Spot it did not stop the inner pockets of trained-camera runs
    (docs/cameras.md); no preset sets it."""
    chunk_size: int = 65536
    """Points per SDF call."""
    mode: Literal["auto", "compact", "static"] = "compact"
    """`compact`: each stage evaluates only the rays still in play (fewest SDF queries: best for large
    MLPs and on the CPU). `static`: every stage evaluates every ray with fixed shapes and no
    data-dependent control flow, so nothing waits on the GPU and the trace can be captured as one CUDA
    graph (best for small grid-encoded fields on a GPU). `auto`: static on CUDA, compact elsewhere.
    All give the same result."""
    fused_steps: Literal["auto", "on", "off"] = "auto"
    """Each static sphere-tracing step's elementwise work (the surface threshold, the fronts still marching, the
    step's candidate depths and points; the choice among them after the SDF call) as two Triton kernels, and each
    secant step's (the bracket's update, the next estimate and its points; both modes) as one
    (`nsr.accel.trace_triton`), instead of about 26 and 19 PyTorch operations, the same arithmetic and the same
    trace bit for bit. `auto`: on CUDA with Triton (an IDR step of 2048 rays on an H100: `hashgrid-fused` 2.87
    against 3.48 ms, `nffb-fused` 8.64 against 9.46 ms; benchmarks/RESULTS.md section 2); `on`: wherever Triton
    runs (on a CPU under TRITON_INTERPRET=1, for tests); `off`: PyTorch's operations. Where the kernels fail, the
    trace goes on without them, with a warning."""
    cuda_graph: bool = False
    """Capture the training-time trace as a CUDA graph and replay it (CUDA only; needs mode `static` or
    `auto`; ignored on the CPU)."""

    def validate(self) -> None:
        checks.positive("bounding_radius", self.bounding_radius)
        checks.positive("sdf_threshold", self.sdf_threshold)
        checks.non_negative("sphere_tracing_iters", self.sphere_tracing_iters)
        checks.in_range("line_search_step", self.line_search_step, 0.0, 1.0, "a back-off factor")
        checks.non_negative("line_step_iters", self.line_step_iters)
        checks.at_least("num_samples", self.num_samples, 2)
        checks.non_negative("num_secant_steps", self.num_secant_steps)
        checks.positive("mask_samples", self.mask_samples)
        if self.mask_search_depth is not None:
            checks.positive("mask_search_depth", self.mask_search_depth)
        checks.positive("chunk_size", self.chunk_size)
        checks.one_of("fused_steps", self.fused_steps, ("auto", "on", "off"))


@dataclass
class TraceResult:
    """What the tracer found for N rays."""

    depth: torch.Tensor
    """(N,) distance along the (unit) ray of the surface point (valid where `hit`)."""
    hit: torch.Tensor
    """(N,) bool, the ray reaches the zero level set inside the bounding sphere."""
    min_points: torch.Tensor | None = None
    """(N, 3) for rays that are not (hit and object): the point of minimal SDF along the ray (mask loss)."""


def intersect_sphere(
    origins: torch.Tensor, directions: torch.Tensor, radius: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances of unit rays with a sphere at the origin.

    Returns:
        near (N,), far (N,) clamped to >= 0, and hits (N,) bool (far > near >= 0 and the ray meets it).
    """
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - radius**2
    disc = b * b - c
    hits = disc > 0
    root = disc.clamp_min(0).sqrt()
    near = (-b - root).clamp_min(0)
    far = (-b + root).clamp_min(0)
    hits = hits & (far > 0)
    return near, far, hits


def _eval(sdf_fn: SDFFunction, points: torch.Tensor, chunk: int) -> torch.Tensor:
    if points.shape[0] <= chunk:
        return sdf_fn(points)
    return torch.cat([sdf_fn(p) for p in points.split(chunk)])


class SphereTracer:
    """Finds the first intersection of rays with the zero level set of an SDF (IDR's algorithm)."""

    merge_dense_searches = True
    """Static mode: the sampler's and the mask loss's dense searches in one SDF call (same result; off
    only to test that)."""

    values_from_back_off = True
    """Static mode: each sphere-tracing step takes the SDF at its new depths from the back-off's batch,
    which evaluates them anyway, instead of a second SDF call (same result; off only to test that)."""

    def __init__(self, config: SphereTracerConfig) -> None:
        self.config = config
        self.fused_unavailable: str | None = None
        """Why the fused step kernels failed, once they have (the steps then run PyTorch's operations)."""

    @torch.no_grad()
    def trace(
        self,
        sdf_fn: SDFFunction,
        origins: torch.Tensor,
        directions: torch.Tensor,
        object_mask: torch.Tensor | None = None,
    ) -> TraceResult:
        """Trace N rays.

        Args:
            sdf_fn: (M, 3) -> (M,) signed distance.
            origins, directions: (N, 3) rays (directions of unit length).
            object_mask: (N,) bool ground-truth masks during training; when given, `min_points`
                is filled for every ray that is not (hit and object) and a sign change is refined
                by secant only on object rays (as IDR does).
        """
        cfg = self.config
        if cfg.mode == "static" or (cfg.mode == "auto" and origins.is_cuda):
            return self._trace_static(sdf_fn, origins, directions, object_mask)
        near, far, in_sphere = intersect_sphere(origins, directions, cfg.bounding_radius)
        t_start, t_end, active = self._sphere_trace(sdf_fn, origins, directions, near, far, in_sphere)
        hit = in_sphere & (t_start < t_end)
        depth = t_start.clone()

        # Rays that did not converge: dense sampling between the two fronts, then secant.
        sampler = active.clone()
        min_points = None
        if object_mask is not None:
            min_points = origins + directions * (-(origins * directions).sum(-1, keepdim=True))
        if sampler.any():
            idx = sampler.nonzero().squeeze(1)
            s_depth, s_hit, s_min = self._sample_and_refine(
                sdf_fn,
                origins[idx],
                directions[idx],
                t_start[idx],
                t_end[idx],
                None if object_mask is None else object_mask[idx],
            )
            depth[idx] = s_depth
            hit[idx] = s_hit
            if min_points is not None:
                min_points[idx] = s_min

        if object_mask is not None:
            # Mask-loss points for converged rays that are background or missed: the minimal SDF
            # along the ray (beyond the hit point for hit-but-background rays).
            need = in_sphere & ~sampler & ~(hit & object_mask)
            if need.any():
                idx = need.nonzero().squeeze(1)
                lo, hi = self._mask_search_range(hit[idx], depth[idx], near[idx], far[idx])
                min_points[idx] = self._min_sdf_points(sdf_fn, origins[idx], directions[idx], lo, hi)
        return TraceResult(depth=depth, hit=hit, min_points=min_points)

    def _sphere_trace(self, sdf_fn, origins, directions, near, far, in_sphere):
        """Two-sided sphere tracing. Returns the two fronts and the rays still unfinished."""
        cfg = self.config
        t = torch.stack([near, far])  # (2, N): front from the entry, front from the exit
        sign = torch.tensor([1.0, -1.0], device=near.device)[:, None]
        active = in_sphere[None].repeat(2, 1)
        sdf = torch.zeros_like(t)
        for it in range(cfg.sphere_tracing_iters + 1):
            idx = active.nonzero(as_tuple=True)
            if idx[0].numel() == 0:
                break
            points = origins[idx[1]] + directions[idx[1]] * t[idx][:, None]
            values = _eval(sdf_fn, points, cfg.chunk_size)
            values = torch.where(values <= cfg.sdf_threshold, torch.zeros_like(values), values)
            sdf[idx] = values
            still = (values > 0) & (t[0, idx[1]] < t[1, idx[1]])
            active[idx] = still
            if it == cfg.sphere_tracing_iters:
                break
            # Step, then back off where the step overshot into the object.
            idx = active.nonzero(as_tuple=True)
            step = sdf[idx]
            t_new = t[idx] + sign[idx[0], 0] * step
            for k in range(cfg.line_step_iters):
                points = origins[idx[1]] + directions[idx[1]] * t_new[:, None]
                overshoot = _eval(sdf_fn, points, cfg.chunk_size) < 0
                if not overshoot.any():
                    break
                back = (1 - cfg.line_search_step) / 2**k * step
                t_new = torch.where(overshoot, t_new - sign[idx[0], 0] * back, t_new)
            t[idx] = t_new
        # Rays whose front from the entry did not reach the surface go to the sampler (as in IDR).
        unfinished = active[0] & (t[0] < t[1])
        return t[0], t[1], unfinished

    def _sample_and_refine(self, sdf_fn, origins, directions, t_lo, t_hi, object_mask, static=False):
        """Uniform samples in [t_lo, t_hi]; the first sign change is refined by the secant method.

        `static`: the secant runs on every ray (fixed shapes) and is kept where it applies; otherwise
        only the rays that need it are refined.
        """
        z = self._uniform_depths(t_lo, t_hi)
        points, values = self._eval_depths(sdf_fn, origins, directions, z)
        return self._refine_samples(sdf_fn, origins, directions, z, points, values, object_mask, static)

    def _uniform_depths(self, t_lo, t_hi):
        """(n, num_samples) depths evenly spaced over [t_lo, t_hi] (the sampler's)."""
        steps = torch.linspace(0, 1, self.config.num_samples, device=t_lo.device)
        return t_lo[:, None] + (t_hi - t_lo)[:, None] * steps[None]

    def _stratified_depths(self, lo, hi):
        """(n, mask_samples) random depths, one in each of mask_samples equal strata of [lo, hi]."""
        n, s = lo.shape[0], self.config.mask_samples
        u = (torch.arange(s, device=lo.device) + torch.rand(n, s, device=lo.device)) / s
        return lo[:, None] + (hi - lo)[:, None] * u

    def _eval_depths(self, sdf_fn, origins, directions, z):
        """The points (n, s, 3) at depths z (n, s) along the rays and their SDF (n, s)."""
        points = origins[:, None] + directions[:, None] * z[..., None]
        values = _eval(sdf_fn, points.reshape(-1, 3), self.config.chunk_size).reshape(z.shape)
        return points, values

    def _refine_samples(self, sdf_fn, origins, directions, z, points, values, object_mask, static):
        """The sampler's result from its samples: the first sign change refined by the secant method,
        else the minimal-SDF sample; and the minimal-SDF point (see `_sample_and_refine`)."""
        cfg = self.config
        n, s = z.shape
        # First negative sample: argmax of (negative) * decreasing ramp.
        ramp = torch.arange(s, 0, -1, device=origins.device, dtype=values.dtype)
        first_neg = torch.argmax((values < 0).to(values.dtype) * ramp, dim=1)
        rows = torch.arange(n, device=origins.device)
        crossing = values[rows, first_neg] < 0
        min_idx = values.argmin(dim=1)
        depth = z[rows, min_idx]
        if cfg.mask_search_depth is not None:  # the mask loss looks no deeper than this past the crossing
            reach = z[rows, first_neg] + cfg.mask_search_depth
            too_deep = crossing[:, None] & (z > reach[:, None])
            min_idx = values.masked_fill(too_deep, torch.inf).argmin(dim=1)
        min_points = points[rows, min_idx]
        refine = crossing & (first_neg > 0)
        if object_mask is not None:
            refine = refine & object_mask
        lo_i = (first_neg - 1).clamp_min(0)
        if static:
            refined = self._secant(
                sdf_fn, origins, directions, z[rows, lo_i], z[rows, first_neg],
                values[rows, lo_i], values[rows, first_neg],
            )  # fmt: skip
            depth = torch.where(refine, refined, depth)
        elif refine.any():
            r = refine.nonzero().squeeze(1)
            z_lo, z_hi = z[r, lo_i[r]], z[r, first_neg[r]]
            f_lo, f_hi = values[r, lo_i[r]], values[r, first_neg[r]]
            depth[r] = self._secant(sdf_fn, origins[r], directions[r], z_lo, z_hi, f_lo, f_hi)
        # A crossing at the very first sample means the ray starts inside: the surface is at t_lo.
        at_start = crossing & (first_neg == 0)
        depth = torch.where(at_start, z[:, 0], depth)
        return depth, crossing, min_points

    def _secant(self, sdf_fn, origins, directions, z_lo, z_hi, f_lo, f_hi):
        if self._fused_steps(origins):
            from nsr.accel import trace_triton

            try:
                return trace_triton.secant(
                    lambda x: _eval(sdf_fn, x, self.config.chunk_size),
                    origins, directions, z_lo, z_hi, f_lo, f_hi, self.config.num_secant_steps,
                )  # fmt: skip
            # e.g. Triton cannot build the kernel here: the trace goes on without it
            except Exception as error:
                self._fused_failed(error)

        def estimate(z_lo, z_hi, f_lo, f_hi):
            denom = f_hi - f_lo
            safe = denom.abs() > 1e-12
            z = z_lo - f_lo * (z_hi - z_lo) / torch.where(safe, denom, torch.ones_like(denom))
            return torch.where(safe, z, (z_lo + z_hi) / 2)

        z = estimate(z_lo, z_hi, f_lo, f_hi)
        for _ in range(self.config.num_secant_steps):
            f = _eval(sdf_fn, origins + directions * z[:, None], self.config.chunk_size)
            pos = f > 0
            z_lo = torch.where(pos, z, z_lo)
            f_lo = torch.where(pos, f, f_lo)
            z_hi = torch.where(pos, z_hi, z)
            f_hi = torch.where(pos, f_hi, f)
            z = estimate(z_lo, z_hi, f_lo, f_hi)
        return z

    def _mask_search_range(self, hit, depth, near, far):
        """Where the minimal-SDF point of a mask-loss ray is searched: from the hit point (or the entry
        into the bounding sphere) to the exit, or at most `mask_search_depth` past the hit point."""
        lo = torch.where(hit, depth, near)
        hi = far
        if self.config.mask_search_depth is not None:
            hi = torch.where(hit, torch.minimum(far, depth + self.config.mask_search_depth), far)
        return lo, hi

    def _min_sdf_points(self, sdf_fn, origins, directions, lo, hi):
        """The point of minimal SDF among random depths in [lo, hi] (stratified)."""
        points, values = self._eval_depths(sdf_fn, origins, directions, self._stratified_depths(lo, hi))
        return points[torch.arange(len(points), device=origins.device), values.argmin(dim=1)]

    # ------------------------------------------------------------------ static shapes
    def _trace_static(self, sdf_fn, origins, directions, object_mask):
        """The same algorithm as `trace` with every stage run on every ray (fixed shapes, no syncs)."""
        cfg = self.config
        n = origins.shape[0]
        near, far, in_sphere = intersect_sphere(origins, directions, cfg.bounding_radius)

        # Two-sided sphere tracing on 2N stacked fronts: [front from the entry; front from the exit].
        t = torch.cat([near, far])
        active = in_sphere.repeat(2)
        t, active = self._march(sdf_fn, origins, directions, t, active)
        t_start, t_end = t[:n], t[n:]
        unfinished = active[:n] & (t_start < t_end)
        hit = in_sphere & (t_start < t_end)

        # Dense sampling + secant for the unfinished rays (computed for all, kept for those); with masks,
        # the mask loss's minimal-SDF search for the finished rays that miss or see background.
        searched = None
        if self.merge_dense_searches and object_mask is not None and cfg.num_samples == cfg.mask_samples:
            s_depth, s_hit, s_min, searched = self._dense_searches_at_once(
                sdf_fn, origins, directions, object_mask, near, far, hit, t_start, t_end, unfinished
            )
        else:
            s_depth, s_hit, s_min = self._sample_and_refine(
                sdf_fn, origins, directions, t_start, t_end, object_mask, static=True
            )
        depth = torch.where(unfinished, s_depth, t_start)
        hit = torch.where(unfinished, s_hit, hit)
        if object_mask is None:
            return TraceResult(depth=depth, hit=hit)

        closest = origins + directions * (-(origins * directions).sum(-1, keepdim=True))
        min_points = torch.where(unfinished[:, None], s_min, closest)
        need = in_sphere & ~unfinished & ~(hit & object_mask)
        if searched is None:
            lo, hi = self._mask_search_range(hit, depth, near, far)
            searched = self._min_sdf_points(sdf_fn, origins, directions, lo, hi)
        min_points = torch.where(need[:, None], searched, min_points)
        return TraceResult(depth=depth, hit=hit, min_points=min_points)

    def _march(self, sdf_fn, origins, directions, t, active):
        """The static trace's sphere tracing of the 2N fronts (t, active: (2N,)): their depths and which still
        march after `sphere_tracing_iters` steps, by `nsr.accel.trace_triton`'s two kernels a step where
        `fused_steps` says so, else by PyTorch's operations."""
        if self._fused_steps(origins) and self.values_from_back_off and self.config.line_step_iters >= 1:
            try:
                return self._march_fused(sdf_fn, origins, directions, t, active)
            # e.g. Triton cannot build the kernels here: the trace goes on without them
            except Exception as error:
                self._fused_failed(error)
        cfg = self.config
        n = origins.shape[0]
        # (Each operation here is a kernel of a step that is bound by its kernels: the fronts' order compared on
        # the (2, N) view rather than repeated.)
        o2, d2 = origins.repeat(2, 1), directions.repeat(2, 1)
        sign = torch.ones_like(t)
        sign[n:] = -1.0
        values = _eval(sdf_fn, o2 + d2 * t[:, None], cfg.chunk_size)
        for it in range(cfg.sphere_tracing_iters + 1):
            values = values.masked_fill(values <= cfg.sdf_threshold, 0.0)  # one kernel; where's scalar is two
            fronts = t.view(2, n)
            active = (active.view(2, n) & (values.view(2, n) > 0) & (fronts[0] < fronts[1])).view(-1)
            if it == cfg.sphere_tracing_iters:
                break
            if self.values_from_back_off:  # one SDF call a step: the back-off's batch holds the new depths
                t_next, v_next = self._back_off_static(sdf_fn, o2, d2, t, sign, values, with_values=True)
                t, values = torch.where(active, t_next, t), torch.where(active, v_next, values)
            else:
                t = torch.where(active, self._back_off_static(sdf_fn, o2, d2, t, sign, values), t)
                values = _eval(sdf_fn, o2 + d2 * t[:, None], cfg.chunk_size)
        return t, active

    def _fused_failed(self, error: Exception) -> None:
        """Turn `fused_steps` off for this tracer after `error`, with one warning."""
        self.fused_unavailable = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        logger.warning(
            "sphere tracing: the fused step kernels failed (%s); the steps run PyTorch's operations",
            self.fused_unavailable,
        )

    def _fused_steps(self, origins) -> bool:
        """Whether the tracer's steps run `nsr.accel.trace_triton`'s kernels (`fused_steps`; the sphere-tracing
        kernels also need the back-off's batch to hold the next step's SDF, `_march`)."""
        cfg = self.config
        if (
            cfg.fused_steps == "off"
            or (cfg.fused_steps == "auto" and not origins.is_cuda)
            or self.fused_unavailable
            or origins.dtype != torch.float32
        ):
            return False
        from nsr.accel.probe import has_triton

        return has_triton()

    def _march_fused(self, sdf_fn, origins, directions, t, active):
        """`_march` with the steps' elementwise work in two kernels a step (`trace_triton.advance`, `choose`)."""
        from nsr.accel import trace_triton

        cfg = self.config
        origins, directions = origins.contiguous(), directions.contiguous()
        t, active = t.contiguous(), active.contiguous()  # the kernels' outputs are contiguous from here on
        values = _eval(sdf_fn, (origins.repeat(2, 1) + directions.repeat(2, 1) * t[:, None]), cfg.chunk_size)
        for it in range(cfg.sphere_tracing_iters + 1):
            step_on = it < cfg.sphere_tracing_iters
            values, active, depths, points = trace_triton.advance(
                t, values.contiguous(), active, origins, directions,
                cfg.sdf_threshold, cfg.line_search_step, cfg.line_step_iters, step_on=step_on,
            )  # fmt: skip
            if not step_on:
                break
            sdf = _eval(sdf_fn, points.view(-1, 3), cfg.chunk_size).view(depths.shape)
            t, values = trace_triton.choose(t, values, active, depths, sdf.contiguous())
        return t, active

    def _dense_searches_at_once(
        self, sdf_fn, origins, directions, object_mask, near, far, hit, t_start, t_end, unfinished
    ):
        """The static trace's two dense searches in one SDF call: no ray needs both (the sampler's is for
        the unfinished rays, the mask loss's for the finished ones that miss or see background), so each
        ray is sampled at the depths of the one it needs and the SDF is evaluated once: the same result
        as the two searches one after the other (the same random depths), with half their SDF queries,
        which are two thirds of a traced step's queries (needs `num_samples == mask_samples`).

        Returns the sampler's depth, hit and minimal-SDF point (as `_sample_and_refine`) and the mask
        search's minimal-SDF point (as `_min_sdf_points`), each meaningful on the rays that need it."""
        lo, hi = self._mask_search_range(hit, t_start, near, far)
        z = torch.where(
            unfinished[:, None], self._uniform_depths(t_start, t_end), self._stratified_depths(lo, hi)
        )
        points, values = self._eval_depths(sdf_fn, origins, directions, z)
        s_depth, s_hit, s_min = self._refine_samples(
            sdf_fn, origins, directions, z, points, values, object_mask, static=True
        )
        searched = points[torch.arange(len(z), device=z.device), values.argmin(dim=1)]
        return s_depth, s_hit, s_min, searched

    def _back_off_static(self, sdf_fn, origins, directions, t, sign, step, with_values=False):
        """The step t + sign * step and its back-off as `_sphere_trace` takes them, with the back-off's SDF queries
        in one batch: the depths after 0, 1, ..
        `line_step_iters` - 1 halvings do not depend on what the SDF says at them, so all are evaluated
        at once and each front takes the first that does not land inside (or the last halving). The same
        depths as the sequential loop, with one SDF call instead of `line_step_iters` (a step captured as a
        CUDA graph is bound by its number of kernels).

        `with_values`: also the SDF at the chosen depths, (depths, values), the last halving evaluated in
        the same batch, so that the next sphere-tracing step needs no SDF call of its own."""
        cfg = self.config
        steps = cfg.line_step_iters
        signed = sign * step  # sign * (c * step) = c * (sign * step) exactly: sign is +-1
        t_new = t + signed
        candidates = [t_new]
        for k in range(steps):
            candidates.append(candidates[-1] - signed * ((1 - cfg.line_search_step) / 2**k))
        tried = candidates if with_values else candidates[:-1]
        if not tried:
            return t_new
        depths = torch.stack(tried)  # (tried, M)
        points = origins + directions * depths[..., None]
        values = _eval(sdf_fn, points.view(-1, 3), cfg.chunk_size).view(len(tried), -1)
        inside = values[:steps] < 0
        if not with_values:
            chosen = candidates[-1]
            for k in reversed(range(steps)):
                chosen = torch.where(inside[k], chosen, candidates[k])
            return chosen
        # each front's depth and value chosen together: one selection a halving on the (2, tried, M) pairs
        pairs = torch.stack([depths, values])
        chosen = pairs[:, -1]
        for k in reversed(range(steps)):
            chosen = torch.where(inside[k], chosen, pairs[:, k])
        return chosen[0], chosen[1]


class GraphedTrace:
    """A training-time trace captured once as a CUDA graph and replayed for every batch of the same size.

    The SDF's parameters are read from their storage at every replay, so in-place optimiser updates
    are seen; anything else the SDF depends on (schedules, level masks) must likewise be tensors
    updated in place.
    """

    def __init__(
        self,
        tracer: SphereTracer,
        sdf_fn: SDFFunction,
        origins: torch.Tensor,
        directions: torch.Tensor,
        object_mask: torch.Tensor,
        context: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        """Capture `tracer.trace(sdf_fn, ...)` for inputs shaped like these.

        `context()` is entered around each warm-up and around the capture (e.g. the weight-norm cache,
        so that the captured graph recomputes the weights once per replay).
        """
        if tracer.config.mode == "compact":
            raise ValueError("cuda_graph needs the tracer's mode='static' (or 'auto')")
        self.inputs = (origins.clone(), directions.clone(), object_mask.clone())
        device = origins.device
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(2):  # warm up: allocator, kernel compilation
                with context():
                    tracer.trace(sdf_fn, *self.inputs)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad(), context():
            self.outputs = tracer.trace(sdf_fn, *self.inputs)

    def __call__(self, origins, directions, object_mask) -> TraceResult:
        for buffer, value in zip(self.inputs, (origins, directions, object_mask)):
            buffer.copy_(value)
        self.graph.replay()
        out = self.outputs
        return TraceResult(depth=out.depth.clone(), hit=out.hit.clone(), min_points=out.min_points.clone())
