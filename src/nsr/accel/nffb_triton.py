"""The filter bank's trunk in one Triton kernel, for evaluations that take no gradient.

Sphere tracing evaluates the SDF some twenty times per training step without a gradient, and in the
plain PyTorch bank every evaluation is 40-70 small kernels (the first sine layer, L Fourier embeddings,
L trunk layers, the style modulation and level attention of `stylemod-nffb`, the heads): on a large GPU
the step is bound by their number (benchmarks/RESULTS.md, "Step time and GPU use"). This kernel computes
the bank's whole output from the points and their grid features in one launch: one program takes BLOCK
points through every layer with the weights read from the L2 cache, and the levels' matrix products are
`tl.dot`s at fp32 accuracy: three tensor-core passes (tf32x3) on a GPU; one tf32 pass would move the
traced surface by more than the tracer's threshold.

Same arithmetic as `NFFB.forward` / `StyleModNFFB` (the oracle of the parity tests); forward only, so
the banks call it only where no gradient is taken (`torch.is_grad_enabled()` false). Runs on CUDA
tensors; under TRITON_INTERPRET=1 (set before importing Triton) also on CPU tensors.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _filter_bank_fwd(
    x_ptr, g_ptr, out_ptr, fw_ptr, fb_ptr, proj_ptr, tw_ptr, tb_ptr, sw_ptr, sb_ptr, sq_ptr, rs_ptr,
    aw_ptr, ab_ptr, hw_ptr, hb_ptr, N, inv_bound, w0, eps,
    D: tl.constexpr, L: tl.constexpr, LP: tl.constexpr, F: tl.constexpr, H: tl.constexpr,
    OUT: tl.constexpr, MOD: tl.constexpr, DIAG: tl.constexpr, RMS: tl.constexpr, ATT: tl.constexpr,
    INCLUDE: tl.constexpr, BLOCK: tl.constexpr, PRECISION: tl.constexpr, MOD_PRECISION: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = rows < N
    rows64 = rows.to(tl.int64)
    hid = tl.arange(0, H)
    outs = tl.arange(0, OUT)
    lev = tl.arange(0, LP)
    two_pi = 6.283185307179586

    # h_0 = sin(w0 (W_0 x / bound + b_0)), D outer products (D is too small for a dot)
    pre = tl.zeros((BLOCK, H), tl.float32) + tl.load(fb_ptr + hid)[None, :]
    for d in tl.static_range(D):
        xd = tl.load(x_ptr + rows64 * D + d, mask=valid, other=0.0) * inv_bound
        pre += xd[:, None] * tl.load(fw_ptr + hid * D + d)[None, :]
    h = tl.sin(w0 * pre)

    # attention a(x) = softmax_l(U [x / bound, g_0 .. g_{L-1}] + u), held as (BLOCK, LP)
    if ATT:
        lvalid = lev < L
        logits = tl.zeros((BLOCK, LP), tl.float32) + tl.load(ab_ptr + lev, mask=lvalid, other=0.0)[None, :]
        for d in tl.static_range(D):
            xd = tl.load(x_ptr + rows64 * D + d, mask=valid, other=0.0) * inv_bound
            logits += xd[:, None] * tl.load(aw_ptr + lev * (D + L * F) + d, mask=lvalid, other=0.0)[None, :]
        for k in tl.static_range(L * F):
            gk = tl.load(g_ptr + rows64 * (L * F) + k, mask=valid, other=0.0)
            logits += (
                gk[:, None] * tl.load(aw_ptr + lev * (D + L * F) + D + k, mask=lvalid, other=0.0)[None, :]
            )
        logits = tl.where(lvalid[None, :], logits, float("-inf"))
        weights = tl.exp(logits - tl.max(logits, axis=1)[:, None])
        weights = weights / tl.sum(weights, axis=1)[:, None]

    acc = tl.zeros((BLOCK, OUT), tl.float32)
    # a loop, not unrolled: L copies of the level's products made the kernel's build take minutes
    for level in tl.range(0, L):
        # e_l = sin(2 pi g_l B_l), F outer products
        proj = tl.zeros((BLOCK, H), tl.float32)
        for f in tl.static_range(F):
            g = tl.load(g_ptr + rows64 * (L * F) + level * F + f, mask=valid, other=0.0)
            proj += g[:, None] * tl.load(proj_ptr + (level * F + f) * H + hid)[None, :]
        e = tl.sin(two_pi * proj)
        # the trunk layer's weight W (out j, in k), read row by row (coalesced) and used transposed; every
        # weight tile is read just before its product, so that one at a time is held in registers
        square = hid[:, None] * H + hid[None, :]
        bias = tl.load(tb_ptr + level * H + hid)
        if MOD:
            # the style: s = A e + a (linear) or s = g * e + a (diagonal)
            offset = tl.load(sb_ptr + level * H + hid)[None, :]
            if DIAG:
                s = e * tl.load(sw_ptr + level * H + hid)[None, :] + offset
            else:
                st = tl.trans(tl.load(sw_ptr + level * H * H + square))
                s = tl.dot(e, st, input_precision=MOD_PRECISION) + offset
            wt = tl.trans(tl.load(tw_ptr + level * H * H + square))
            if RMS:
                # y = w0 b + w0 (W (s * h)) / rms(s)
                inv_rms = w0 / tl.sqrt(tl.sum(s * s, axis=1) * (1.0 / H) + eps)
                y = w0 * bias[None, :] + tl.dot(h * s, wt, input_precision=PRECISION) * inv_rms[:, None]
            else:
                # y = w0 b + w0 ||w_j|| (W (s * h))_j / sqrt((W^2 s^2)_j + eps), with W^2 and w0 ||w_j||
                # computed once per call by PyTorch (not in every program)
                sq = tl.trans(tl.load(sq_ptr + level * H * H + square))
                demod = 1.0 / tl.sqrt(tl.dot(s * s, sq, input_precision=MOD_PRECISION) + eps)
                scale = demod * tl.load(rs_ptr + level * H + hid)[None, :]
                y = w0 * bias[None, :] + tl.dot(h * s, wt, input_precision=PRECISION) * scale
        else:
            wt = tl.trans(tl.load(tw_ptr + level * H * H + square))
            y = w0 * (tl.dot(h, wt, input_precision=PRECISION) + bias[None, :])
        h = tl.sin(y) + e
        # this level's head V_l h_l + c_l, weighted by its attention or by 1 / L
        head = tl.load(hw_ptr + level * H * OUT + hid[:, None] * OUT + outs[None, :])
        contribution = (
            tl.dot(h, head, input_precision=PRECISION) + tl.load(hb_ptr + level * OUT + outs)[None, :]
        )
        if ATT:
            a = tl.sum(tl.where(lev[None, :] == level, weights, 0.0), axis=1)
            acc += a[:, None] * contribution
        else:
            acc += contribution * (1.0 / L)

    row = rows64 * (D * INCLUDE + OUT)  # the output's row starts: [x, features] or the features alone
    if INCLUDE:
        for d in tl.static_range(D):
            tl.store(out_ptr + row + d, tl.load(x_ptr + rows64 * D + d, mask=valid, other=0.0), mask=valid)
    tl.store(out_ptr + row[:, None] + D * INCLUDE + outs[None, :], acc, mask=valid[:, None])


def supports(hidden: int, out_features: int) -> bool:
    """Widths the kernel takes: powers of two from 16 (the smallest `tl.dot` operand)."""
    return all(n >= 16 and n & (n - 1) == 0 for n in (hidden, out_features))


def filter_bank_forward(
    x: torch.Tensor,
    grid_features: torch.Tensor,
    first: tuple[torch.Tensor, torch.Tensor],
    projections: torch.Tensor,
    trunk: tuple[torch.Tensor, torch.Tensor],
    heads: tuple[torch.Tensor, torch.Tensor],
    *,
    bound: float,
    w0: float,
    include_input: bool,
    styles: tuple[torch.Tensor, torch.Tensor] | None = None,
    attention: tuple[torch.Tensor, torch.Tensor] | None = None,
    demodulation: str = "exact",
    eps: float = 1e-8,
    block: int | None = None,
    precision: str | None = None,
    mod_precision: str | None = None,
    num_warps: int | None = None,
    max_registers: int | None = None,
) -> torch.Tensor:
    """The filter bank's output (N, D * include_input + O) from points x (N, D) and grid features (N, L, F).

    `first` is the first layer's (W_0 (H, D), b_0 (H,)), `projections` B (L, F, H), `trunk` the stacked
    (L, H, H) weights and (L, H) biases of the L injected layers, `heads` (V (L, H, O), c (L, O)); with
    `styles` the layers are modulated (stacked (L, H, H), (L, H) affine maps, or (L, H) gains and (L, H)
    offsets for the diagonal style map) and demodulated as `demodulation` says ("exact" or "style_rms", as
    `StyleModNFFBConfig`), with `attention` ((L, D + L F), (L,)) the levels are weighted by a softmax instead
    of 1 / L. Float32 only, no gradient. `block` points per
    program (None: 16, for the style-modulated bank 2.6x faster than 32 at 20,480 points on an H200, for the
    plain one 1.2-1.4x faster at 12,288 and 65,536 points; benchmarks/RESULTS.md), `precision` of the
    products (`tl.dot`'s input_precision: "ieee", fp32 on the CUDA cores, or "tf32x3", three tensor-core
    passes that give fp32's accuracy, on CUDA only; None: tf32x3 on CUDA, ieee elsewhere), `mod_precision`
    that of the style-modulated bank's style and demodulation products (None: `precision`; "tf32", one
    tensor-core pass, trades accuracy for time), `num_warps` (None: 8 for the style-modulated bank with a
    linear style map or the exact demodulation, 4 for the plain bank and the cheaper modulation) and
    `max_registers` (None: the compiler's choice; a cap, PTX's `.maxnreg`, lets more programs share a
    multiprocessor at the risk of spills: the exact style-modulated kernel at 16 points and 8 warps takes 172
    registers and fits in 128 without a spill, which doubles its resident programs) are
    tuning knobs (`benchmarks/bench_fused_bank.py`; registers and spills of a setting without a GPU:
    `benchmarks/kernel_registers.py`).
    """
    if precision is None:
        precision = "tf32x3" if x.is_cuda else "ieee"
    if mod_precision is None:
        mod_precision = precision
    exact = styles is not None and (demodulation == "exact" or styles[0].dim() == 3)
    if num_warps is None:
        # 8 for the exact modulation's products (graphed IDR step 20.4 against 22.4 ms with 4, H200, 2026-12-05);
        # 4 for the plain bank and the cheaper modulation, whose kernel has the plain one's products and registers
        # (graphed `stylemod-nffb-fused` step of 2048 rays 10.01 against 10.36 ms with 8, H100, 2026-12-07)
        num_warps = 8 if exact else 4
    if block is None:
        block = 16
    n, d = x.shape
    levels, feats, hidden = projections.shape
    out_features = heads[0].shape[2]
    if not supports(hidden, out_features):
        raise ValueError(
            f"the fused filter bank needs H and O powers of two >= 16, got {hidden}, {out_features}"
        )
    tensors = [x, grid_features, *first, projections, *trunk, *heads, *(styles or ()), *(attention or ())]
    if any(t.dtype != torch.float32 for t in tensors):
        raise ValueError("the fused filter bank runs in float32")
    out = torch.empty(n, d * int(include_input) + out_features, device=x.device, dtype=torch.float32)
    if n == 0:
        return out
    if demodulation not in ("exact", "style_rms"):
        raise ValueError(f"demodulation {demodulation!r}: must be exact or style_rms")
    dummy = first[1]  # the pointer of an argument the kernel does not read (no styles / no attention)
    sw, sb = styles if styles is not None else (dummy, dummy)
    demodulated = styles is not None and demodulation == "exact"
    # the exact demodulation's W^2 and the rescaling w0 ||w_j|| of the unmodulated rows, once per call
    square, row_scale = (trunk[0].square(), w0 * trunk[0].norm(dim=2)) if demodulated else (dummy, dummy)
    aw, ab = attention if attention is not None else (dummy, dummy)
    c = [
        t.contiguous()
        for t in (x, grid_features, *first, projections, *trunk, sw, sb, square, row_scale, aw, ab, *heads)
    ]
    _filter_bank_fwd[(triton.cdiv(n, block),)](
        c[0], c[1], out, *c[2:],
        n, 1.0 / bound, w0, eps,
        D=d, L=levels, LP=max(2, 1 << math.ceil(math.log2(levels))), F=feats, H=hidden, OUT=out_features,
        MOD=styles is not None, DIAG=styles is not None and styles[0].dim() == 2,
        RMS=demodulation == "style_rms", ATT=attention is not None, INCLUDE=include_input, BLOCK=block,
        PRECISION=precision, MOD_PRECISION=mod_precision, num_warps=num_warps,
        **({"maxnreg": max_registers} if max_registers else {}),
    )  # fmt: skip
    return out


__all__ = ["filter_bank_forward", "supports"]
