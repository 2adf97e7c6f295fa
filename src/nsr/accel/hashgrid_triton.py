"""Fused hash-grid lookup in Triton: forward, and backward to the table and to the input (first order).

Same arithmetic as the reference `nsr.encodings.hashgrid.hashgrid_torch` (the oracle of the parity
tests): u = clamp((x + bound) / (2 bound), 0, 1), p = u R, cell = min(floor(p), R - 1), corner weights
from the (smoothstep of the) fractional part, dense rows c0 + c1 (R+1) + c2 (R+1)^2 where the level fits,
else (c0 * 1 ^ c1 * 2654435761 ^ c2 * 805459861) & (T - 1), in int64 (the primes are loaded from an
int64 tensor, so no literal is narrowed to 32 bits).

One program handles BLOCK points of one level (grid = (ceil(N / BLOCK), active levels)). The table
gradient is accumulated with fp32 atomic adds, the input gradient too (one add per level), so the
backward is not bit-deterministic. The backward is marked once-differentiable: the analytic eikonal
term needs the torch backend, or the SDF field's finite-difference gradient with this kernel.

Runs on CUDA tensors; under TRITON_INTERPRET=1 (set before importing Triton) it also runs on CPU
tensors, which is how the CPU tests check it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from nsr.accel.hashing import primes_on


@triton.jit
def _axis(
    x_ptr, rows64, valid, axis: tl.constexpr, D: tl.constexpr, bound, inv_2bound, Rf, SMOOTH: tl.constexpr
):
    """Per-axis lookup state: integer cell, weight of the upper corner, its derivative, in-domain flag."""
    x = tl.load(x_ptr + rows64 * D + axis, mask=valid, other=0.0).to(tl.float32)
    u_raw = (x + bound) * inv_2bound
    u = tl.minimum(tl.maximum(u_raw, 0.0), 1.0)
    p = u * Rf
    cell = tl.minimum(tl.floor(p), Rf - 1.0)
    frac = p - cell
    if SMOOTH:
        s = frac * frac * (3.0 - 2.0 * frac)
        ds = 6.0 * frac * (1.0 - frac)
    else:
        s = frac
        ds = frac * 0.0 + 1.0
    inside = (u_raw >= 0.0) & (u_raw <= 1.0)
    return cell.to(tl.int64), s, ds, inside


@triton.jit
def _corner_row(c0, c1, c2, R1, is_dense, hash_mask, p1, p2, D: tl.constexpr):
    """Table row (within the level) of the corner (c0, c1, c2) (c2 unused when D == 2)."""
    if D == 3:
        dense_row = c0 + c1 * R1 + c2 * R1 * R1
        hashed = (c0 ^ (c1 * p1) ^ (c2 * p2)) & hash_mask
    else:
        dense_row = c0 + c1 * R1
        hashed = (c0 ^ (c1 * p1)) & hash_mask
    return tl.where(is_dense, dense_row, hashed)


@triton.jit
def _hashgrid_fwd(
    x_ptr, table_ptr, out_ptr, res_ptr, off_ptr, dense_ptr, primes_ptr,
    N, L, hash_mask, bound, inv_2bound,
    D: tl.constexpr, NC: tl.constexpr, F: tl.constexpr, SMOOTH: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    level = tl.program_id(1)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    valid = rows < N
    rows64 = rows.to(tl.int64)
    R = tl.load(res_ptr + level)
    Rf = R.to(tl.float32)
    R1 = R + 1
    offset = tl.load(off_ptr + level)
    is_dense = tl.load(dense_ptr + level) != 0
    p1 = tl.load(primes_ptr + 1)
    p2 = tl.load(primes_ptr + 2)
    feat = tl.arange(0, F)
    c0, s0, _d0, _i0 = _axis(x_ptr, rows64, valid, 0, D, bound, inv_2bound, Rf, SMOOTH)
    c1, s1, _d1, _i1 = _axis(x_ptr, rows64, valid, 1, D, bound, inv_2bound, Rf, SMOOTH)
    if D == 3:
        c2, s2, _d2, _i2 = _axis(x_ptr, rows64, valid, 2, D, bound, inv_2bound, Rf, SMOOTH)
    else:
        c2 = c0 * 0
        s2 = s0 * 0.0
    acc = tl.zeros([BLOCK, F], dtype=tl.float32)
    for corner in tl.static_range(NC):
        b0 = corner & 1
        b1 = (corner >> 1) & 1
        b2 = (corner >> 2) & 1
        # Weight of the corner along an axis: s for the upper corner (b = 1), 1 - s for the lower.
        w = (b0 * s0 + (1 - b0) * (1.0 - s0)) * (b1 * s1 + (1 - b1) * (1.0 - s1))
        if D == 3:
            w = w * (b2 * s2 + (1 - b2) * (1.0 - s2))
        row = _corner_row(c0 + b0, c1 + b1, c2 + b2, R1, is_dense, hash_mask, p1, p2, D) + offset
        values = tl.load(table_ptr + row[:, None] * F + feat[None, :], mask=valid[:, None], other=0.0)
        acc += w[:, None] * values
    tl.store(out_ptr + rows64[:, None] * (L * F) + level * F + feat[None, :], acc, mask=valid[:, None])


@triton.jit
def _hashgrid_bwd(
    x_ptr, table_ptr, gout_ptr, gtable_ptr, gx_ptr, res_ptr, off_ptr, dense_ptr, primes_ptr,
    N, L, hash_mask, bound, inv_2bound,
    D: tl.constexpr, NC: tl.constexpr, F: tl.constexpr, SMOOTH: tl.constexpr,
    NEED_TABLE: tl.constexpr, NEED_X: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    level = tl.program_id(1)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    valid = rows < N
    rows64 = rows.to(tl.int64)
    R = tl.load(res_ptr + level)
    Rf = R.to(tl.float32)
    R1 = R + 1
    offset = tl.load(off_ptr + level)
    is_dense = tl.load(dense_ptr + level) != 0
    p1 = tl.load(primes_ptr + 1)
    p2 = tl.load(primes_ptr + 2)
    feat = tl.arange(0, F)
    g = tl.load(
        gout_ptr + rows64[:, None] * (L * F) + level * F + feat[None, :], mask=valid[:, None], other=0.0
    )
    c0, s0, d0, i0 = _axis(x_ptr, rows64, valid, 0, D, bound, inv_2bound, Rf, SMOOTH)
    c1, s1, d1, i1 = _axis(x_ptr, rows64, valid, 1, D, bound, inv_2bound, Rf, SMOOTH)
    if D == 3:
        c2, s2, d2, i2 = _axis(x_ptr, rows64, valid, 2, D, bound, inv_2bound, Rf, SMOOTH)
    else:
        c2 = c0 * 0
        s2 = s0 * 0.0
        d2 = s0 * 0.0
        i2 = i0
    gx0 = tl.zeros([BLOCK], dtype=tl.float32)
    gx1 = tl.zeros([BLOCK], dtype=tl.float32)
    gx2 = tl.zeros([BLOCK], dtype=tl.float32)
    for corner in tl.static_range(NC):
        b0 = corner & 1
        b1 = (corner >> 1) & 1
        b2 = (corner >> 2) & 1
        w0 = b0 * s0 + (1 - b0) * (1.0 - s0)
        w1 = b1 * s1 + (1 - b1) * (1.0 - s1)
        w2 = b2 * s2 + (1 - b2) * (1.0 - s2)  # 1 when D == 2 (s2 = 0, b2 = 0)
        row = _corner_row(c0 + b0, c1 + b1, c2 + b2, R1, is_dense, hash_mask, p1, p2, D) + offset
        ptrs = row[:, None] * F + feat[None, :]
        if NEED_TABLE:
            tl.atomic_add(gtable_ptr + ptrs, (w0 * w1 * w2)[:, None] * g, mask=valid[:, None])
        if NEED_X:
            values = tl.load(table_ptr + ptrs, mask=valid[:, None], other=0.0)
            dot = tl.sum(values * g, axis=1)
            # d w_axis / d p_axis = +ds (upper corner) or -ds (lower corner).
            gx0 += dot * ((2 * b0 - 1) * d0) * w1 * w2
            gx1 += dot * w0 * ((2 * b1 - 1) * d1) * w2
            if D == 3:
                gx2 += dot * w0 * w1 * ((2 * b2 - 1) * d2)
    if NEED_X:
        scale = Rf * inv_2bound
        tl.atomic_add(gx_ptr + rows64 * D + 0, tl.where(i0, gx0 * scale, 0.0), mask=valid)
        tl.atomic_add(gx_ptr + rows64 * D + 1, tl.where(i1, gx1 * scale, 0.0), mask=valid)
        if D == 3:
            tl.atomic_add(gx_ptr + rows64 * D + 2, tl.where(i2, gx2 * scale, 0.0), mask=valid)


def _block(features: int) -> int:
    return 128 if features <= 2 else 64


class _HashGridFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, resolutions, offsets, dense, primes, hash_mask, bound, smoothstep, num_active):
        n, d = x.shape
        levels, features = resolutions.shape[0], table.shape[1]
        out = torch.zeros(n, levels, features, device=x.device, dtype=torch.float32)
        block = _block(features)
        if n and num_active:
            _hashgrid_fwd[(triton.cdiv(n, block), num_active)](
                x, table, out, resolutions, offsets, dense, primes,
                n, levels, hash_mask, float(bound), 0.5 / float(bound),
                D=d, NC=2**d, F=features, SMOOTH=bool(smoothstep), BLOCK=block,
            )  # fmt: skip
        ctx.save_for_backward(x, table, resolutions, offsets, dense, primes)
        ctx.meta = (hash_mask, float(bound), bool(smoothstep), int(num_active))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, table, resolutions, offsets, dense, primes = ctx.saved_tensors
        hash_mask, bound, smoothstep, num_active = ctx.meta
        need_x, need_table = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n, d = x.shape
        levels, features = resolutions.shape[0], table.shape[1]
        grad_out = grad_out.contiguous().float()
        grad_x = torch.zeros_like(x) if need_x else None
        grad_table = torch.zeros_like(table) if need_table else None
        block = _block(features)
        if n and num_active and (need_x or need_table):
            _hashgrid_bwd[(triton.cdiv(n, block), num_active)](
                x, table, grad_out,
                grad_table if need_table else table, grad_x if need_x else x,
                resolutions, offsets, dense, primes,
                n, levels, hash_mask, bound, 0.5 / bound,
                D=d, NC=2**d, F=features, SMOOTH=smoothstep, NEED_TABLE=bool(need_table), NEED_X=bool(need_x),
                BLOCK=block,
            )  # fmt: skip
        return grad_x, grad_table, None, None, None, None, None, None, None, None


def hashgrid_fused(
    x: torch.Tensor,
    table: torch.Tensor,
    resolutions: torch.Tensor,
    offsets: torch.Tensor,
    dense: torch.Tensor,
    hash_mask: int,
    bound: float,
    smoothstep: bool = False,
    num_active: int | None = None,
) -> torch.Tensor:
    """Fused lookup of all levels: (N, D) points, (E, F) fp32 table -> (N, L, F) fp32 features.

    Arguments as `hashgrid_torch` (resolutions, offsets: (L,) int64; dense: (L,) bool), plus
    `num_active`: levels at index >= num_active are not computed and stay zero (coarse-to-fine).
    Differentiable once, with respect to x and the table.
    """
    if x.dim() != 2 or x.shape[1] not in (2, 3):
        raise ValueError(f"fused hash grid takes (N, 2) or (N, 3) points, got {tuple(x.shape)}")
    if table.dtype != torch.float32:
        raise ValueError(f"fused hash grid needs a float32 table, got {table.dtype}")
    levels = resolutions.shape[0]
    num_active = levels if num_active is None else int(num_active)
    primes = primes_on(x.device)
    return _HashGridFunction.apply(
        x.float().contiguous(),
        table.contiguous(),
        resolutions.to(torch.int32).contiguous(),
        offsets.to(torch.int64).contiguous(),
        dense.to(torch.int32).contiguous(),
        primes,
        int(hash_mask),
        float(bound),
        bool(smoothstep),
        num_active,
    )


__all__ = ["hashgrid_fused"]
