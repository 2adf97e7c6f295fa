"""The static sphere tracer's steps in Triton: two kernels a step where PyTorch launches about 26.

`SphereTracer._trace_static` marches 2N fronts (front j < N from ray j's entry into the bounding sphere, front
N + j from its exit) for `sphere_tracing_iters` steps. Around each step's SDF call everything is elementwise:

- `advance`: the surface threshold on the fronts' SDF, the fronts still marching (positive SDF, the two fronts of a
  ray not crossed), and the step's candidate depths (the step t + sign * sdf and its `line_step_iters` halvings)
  with their points;
- `choose`: each marching front takes the first candidate that does not land inside (or the last halving), and its
  SDF from the same batch.

The same arithmetic as the PyTorch loop (its reference, tests/renderers/test_tracer.py under TRITON_INTERPRET=1),
compiled without floating-point contraction (`enable_fp_fusion=False`), so the products and sums round as PyTorch's
separate kernels do. Runs on CUDA tensors; under TRITON_INTERPRET=1 (set before importing Triton) it also runs on CPU
tensors, which is how the CPU tests check it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 256


@triton.jit
def _advance_front(
    t, v, sign, ox, oy, oz, dx, dy, dz, depth_ptr, point_ptr, j, valid, M, back, S: tl.constexpr,
    TRIED: tl.constexpr,
):  # fmt: skip
    """The candidate depths of one front (the step and its halvings) and their points, stored for the SDF call."""
    signed = sign * v
    c = t + signed
    tl.store(depth_ptr + j, c, mask=valid)
    tl.store(point_ptr + j * 3, ox + dx * c, mask=valid)
    tl.store(point_ptr + j * 3 + 1, oy + dy * c, mask=valid)
    tl.store(point_ptr + j * 3 + 2, oz + dz * c, mask=valid)
    coef = back
    for k in tl.static_range(1, TRIED):
        c = c - signed * coef
        coef = coef * 0.5
        row = k * M + j
        tl.store(depth_ptr + row, c, mask=valid)
        tl.store(point_ptr + row * 3, ox + dx * c, mask=valid)
        tl.store(point_ptr + row * 3 + 1, oy + dy * c, mask=valid)
        tl.store(point_ptr + row * 3 + 2, oz + dz * c, mask=valid)


@triton.jit
def _advance_kernel(
    t_ptr, v_ptr, active_ptr, o_ptr, d_ptr, v_out_ptr, active_out_ptr, depth_ptr, point_ptr, n, threshold, back,
    S: tl.constexpr, TRIED: tl.constexpr, ADVANCE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = i < n
    M = 2 * n
    t0 = tl.load(t_ptr + i, mask=valid, other=0.0)
    t1 = tl.load(t_ptr + n + i, mask=valid, other=0.0)
    v0 = tl.load(v_ptr + i, mask=valid, other=0.0)
    v1 = tl.load(v_ptr + n + i, mask=valid, other=0.0)
    v0 = tl.where(v0 <= threshold, 0.0, v0)
    v1 = tl.where(v1 <= threshold, 0.0, v1)
    ordered = t0 < t1
    a0 = (tl.load(active_ptr + i, mask=valid, other=0) != 0) & (v0 > 0) & ordered
    a1 = (tl.load(active_ptr + n + i, mask=valid, other=0) != 0) & (v1 > 0) & ordered
    tl.store(v_out_ptr + i, v0, mask=valid)
    tl.store(v_out_ptr + n + i, v1, mask=valid)
    tl.store(active_out_ptr + i, a0.to(tl.int8), mask=valid)
    tl.store(active_out_ptr + n + i, a1.to(tl.int8), mask=valid)
    if ADVANCE:
        ox = tl.load(o_ptr + i * 3, mask=valid, other=0.0)
        oy = tl.load(o_ptr + i * 3 + 1, mask=valid, other=0.0)
        oz = tl.load(o_ptr + i * 3 + 2, mask=valid, other=0.0)
        dx = tl.load(d_ptr + i * 3, mask=valid, other=0.0)
        dy = tl.load(d_ptr + i * 3 + 1, mask=valid, other=0.0)
        dz = tl.load(d_ptr + i * 3 + 2, mask=valid, other=0.0)
        _advance_front(t0, v0, 1.0, ox, oy, oz, dx, dy, dz, depth_ptr, point_ptr, i, valid, M, back, S, TRIED)
        _advance_front(
            t1, v1, -1.0, ox, oy, oz, dx, dy, dz, depth_ptr, point_ptr, n + i, valid, M, back, S, TRIED
        )


@triton.jit
def _choose_kernel(
    t_ptr,
    v_ptr,
    active_ptr,
    depth_ptr,
    sdf_ptr,
    t_out_ptr,
    v_out_ptr,
    M,
    S: tl.constexpr,
    BLOCK: tl.constexpr,
):
    j = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = j < M
    chosen = tl.load(depth_ptr + S * M + j, mask=valid, other=0.0)
    chosen_value = tl.load(sdf_ptr + S * M + j, mask=valid, other=0.0)
    for step in tl.static_range(S):
        k = S - 1 - step
        value = tl.load(sdf_ptr + k * M + j, mask=valid, other=0.0)
        inside = value < 0
        chosen = tl.where(inside, chosen, tl.load(depth_ptr + k * M + j, mask=valid, other=0.0))
        chosen_value = tl.where(inside, chosen_value, value)
    active = tl.load(active_ptr + j, mask=valid, other=0) != 0
    t = tl.load(t_ptr + j, mask=valid, other=0.0)
    v = tl.load(v_ptr + j, mask=valid, other=0.0)
    tl.store(t_out_ptr + j, tl.where(active, chosen, t), mask=valid)
    tl.store(v_out_ptr + j, tl.where(active, chosen_value, v), mask=valid)


def advance(
    t: torch.Tensor,
    values: torch.Tensor,
    active: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
    threshold: float,
    line_search_step: float,
    steps: int,
    step_on: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One step's work before its SDF call, for the 2N fronts of N rays: t, values (2N,) float32, active (2N,)
    bool, origins and directions (N, 3) float32 contiguous. Returns the thresholded values, the fronts still
    marching and, with `step_on`, the candidate depths (steps + 1, 2N) and their points (steps + 1, 2N, 3)."""
    n = origins.shape[0]
    tried = steps + 1
    values_out = torch.empty_like(values)
    active_out = torch.empty(2 * n, dtype=torch.int8, device=t.device)
    depths = torch.empty(tried, 2 * n, dtype=t.dtype, device=t.device) if step_on else values_out
    points = torch.empty(tried, 2 * n, 3, dtype=t.dtype, device=t.device) if step_on else values_out
    _advance_kernel[(triton.cdiv(n, BLOCK),)](
        t, values, active.view(torch.int8), origins, directions, values_out, active_out, depths, points, n,
        float(threshold), float(1 - line_search_step), S=steps, TRIED=tried, ADVANCE=step_on, BLOCK=BLOCK,
        enable_fp_fusion=False,
    )  # fmt: skip
    active_out = active_out.view(torch.bool)
    return (values_out, active_out, depths, points) if step_on else (values_out, active_out, None, None)


def choose(
    t: torch.Tensor, values: torch.Tensor, active: torch.Tensor, depths: torch.Tensor, sdf: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's work after its SDF call: the marching fronts' new depths and SDF from the candidates' depths
    and SDF (steps + 1, 2N); the others keep theirs."""
    m = t.shape[0]
    t_out, values_out = torch.empty_like(t), torch.empty_like(values)
    _choose_kernel[(triton.cdiv(m, BLOCK),)](
        t, values, active.view(torch.int8), depths, sdf, t_out, values_out, m, S=depths.shape[0] - 1, BLOCK=BLOCK,
        enable_fp_fusion=False,
    )  # fmt: skip
    return t_out, values_out


@triton.jit
def _secant_kernel(
    bracket_ptr, f_ptr, z_ptr, o_ptr, d_ptr, point_ptr, n, FIRST: tl.constexpr, LAST: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = i < n
    z_lo = tl.load(bracket_ptr + i, mask=valid, other=0.0)
    z_hi = tl.load(bracket_ptr + n + i, mask=valid, other=1.0)
    f_lo = tl.load(bracket_ptr + 2 * n + i, mask=valid, other=0.0)
    f_hi = tl.load(bracket_ptr + 3 * n + i, mask=valid, other=1.0)
    if not FIRST:  # the SDF at the last estimate replaces the bracket's end of its sign
        z = tl.load(z_ptr + i, mask=valid, other=0.0)
        f = tl.load(f_ptr + i, mask=valid, other=0.0)
        pos = f > 0
        z_lo = tl.where(pos, z, z_lo)
        f_lo = tl.where(pos, f, f_lo)
        z_hi = tl.where(pos, z_hi, z)
        f_hi = tl.where(pos, f_hi, f)
        tl.store(bracket_ptr + i, z_lo, mask=valid)
        tl.store(bracket_ptr + n + i, z_hi, mask=valid)
        tl.store(bracket_ptr + 2 * n + i, f_lo, mask=valid)
        tl.store(bracket_ptr + 3 * n + i, f_hi, mask=valid)
    denom = f_hi - f_lo
    safe = tl.abs(denom) > 1e-12
    z = z_lo - tl.math.div_rn(f_lo * (z_hi - z_lo), tl.where(safe, denom, 1.0))
    z = tl.where(safe, z, (z_lo + z_hi) * 0.5)
    tl.store(z_ptr + i, z, mask=valid)
    if not LAST:
        for axis in tl.static_range(3):
            o = tl.load(o_ptr + i * 3 + axis, mask=valid, other=0.0)
            d = tl.load(d_ptr + i * 3 + axis, mask=valid, other=0.0)
            tl.store(point_ptr + i * 3 + axis, o + d * z, mask=valid)


def secant(
    sdf_fn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    z_lo: torch.Tensor,
    z_hi: torch.Tensor,
    f_lo: torch.Tensor,
    f_hi: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """`SphereTracer._secant` with each step's elementwise work (the bracket's update by the SDF at the last estimate,
    the next estimate and its points) as one kernel: `steps` + 1 kernels and `steps` SDF calls (`sdf_fn` on (n, 3)
    float32 points) for n rays (origins, directions (n, 3); the bracket's depths and SDF (n,))."""
    n = origins.shape[0]
    origins, directions = origins.contiguous(), directions.contiguous()
    bracket = torch.stack([z_lo, z_hi, f_lo, f_hi])  # updated in place
    z = torch.empty_like(z_lo)
    points = torch.empty_like(origins)
    grid = (triton.cdiv(n, BLOCK),)
    _secant_kernel[grid](
        bracket, z, z, origins, directions, points, n, FIRST=True, LAST=steps == 0, BLOCK=BLOCK,
        enable_fp_fusion=False,
    )  # fmt: skip
    for step in range(steps):
        f = sdf_fn(points).contiguous()
        _secant_kernel[grid](
            bracket, f, z, origins, directions, points, n, FIRST=False, LAST=step == steps - 1, BLOCK=BLOCK,
            enable_fp_fusion=False,
        )  # fmt: skip
    return z
