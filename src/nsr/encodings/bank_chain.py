"""The filter banks' trunk, injections and heads as one autograd function with its backward written out.

An eager GPU training step of a filter-bank preset is bound by its launches, not by its arithmetic (a graphed
IDR step of `nffb-fused` at 2048 rays: about 1800 kernels, the GPU busy 15-23% of the time on an H100). Autograd's
composition of `NFFB._chain` launches a few kernels per level for every operation and its gradient; `BankChain`
does the same arithmetic with the levels batched wherever they do not depend on each other: the L Fourier
embeddings in one batched product, the L heads in one, the gradients of the L trunk layers' weights in one, and
the style's normalisation (`StyleModNFFB`, `style_map: diagonal`, `demodulation: style_rms`) for all levels at
once. Only the trunk's recursion stays level by level. First order only (differentiating its gradient raises);
`NFFB._chain` is its reference (tests/encodings/test_nffb.py: values, every gradient, gradcheck).

The gradients of the per-level parameters are sums over the points (`level_products`): products whose inner
dimension is the number of points (thousands) and whose outputs are small (64 x 64 a level).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

CHUNK_POINTS = 256
"""The fewest points of a chunk in `level_products`."""


def level_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(L, N, P), (L, N, Q) -> (L, P, Q): the sum over the points of a[l, n]^T b[l, n] for every level.

    One batched product over chunks of the points and a sum of the chunks' results. As one `bmm` the points are
    the inner dimension of L small products, which cuBLAS does not split: on an H100 (2026-12-07, nineteenth
    session, `profile_step.py --table`) such a product of the style bank's backward pass took 208 us, nine a graphed
    IDR step of 2048 rays (1.9 of its 10.3 ms). Chunked, the product has L x chunks independent pieces, and those
    kernels left the profile (2026-12-08: the style step 9.0 ms, the plain bank's step with this chain 7.01 against
    7.86 ms through autograd's per-level `mm`s). The chunks: the largest power of two that divides N and leaves at
    least `CHUNK_POINTS` points a chunk (N = 15360: 32 chunks of 480); one `bmm` where there is none."""
    levels, points, p = a.shape
    chunks = 1
    while points % (2 * chunks) == 0 and points // (2 * chunks) >= CHUNK_POINTS:
        chunks *= 2
    if chunks == 1:
        return torch.bmm(a.transpose(1, 2), b)
    size = points // chunks
    pieces = torch.bmm(
        a.contiguous().view(levels * chunks, size, p).transpose(1, 2),
        b.contiguous().view(levels * chunks, size, b.shape[2]),
    )
    return pieces.view(levels, chunks, p, b.shape[2]).sum(1)


class _Saved(NamedTuple):
    """What `BankChain`'s forward pass keeps for its backward pass (None for a plain bank's styles and the mean
    over levels' weights)."""

    h0: torch.Tensor
    level_grid: torch.Tensor
    filters: torch.Tensor
    pre_embedding: torch.Tensor
    embedding: torch.Tensor
    weight: torch.Tensor
    pre: torch.Tensor
    outputs: torch.Tensor
    inputs: torch.Tensor | None
    normalised: torch.Tensor | None
    inverse_rms: torch.Tensor | None
    style_gain: torch.Tensor | None
    head_weight: torch.Tensor
    head_bias: torch.Tensor
    heads: torch.Tensor | None
    """h_l V_l (L, N, O), for the level weights' gradient (None without level weights)."""
    level_weights: torch.Tensor | None


class BankChain(torch.autograd.Function):
    """(h0, grid_features, projections, trunk weights and biases, heads, level weights, styles) -> features.

    Shapes: h0 (N, H), the first sine layer's output; grid_features (N, L, F); projections (L, F, H); trunk_weight
    (L, H, H) and trunk_bias (L, H), the injected layers' `nn.Linear` parameters; head_weight (L, H, O) and
    head_bias (L, O); level_weights (N, L) or None for the mean over levels; style_gain and style_offset (L, H)
    or None for the plain bank. Returns the features (N, O):

        e_l = sin(2 pi g_l B_l)
        h_l = sin(w0 (W_l (h_{l-1} * n_l) + b_l)) + e_l,   n_l = s_l / sqrt(mean(s_l^2) + eps), s_l = a_l + k_l * e_l
        features = sum_l w_l (h_l V_l + c_l)

    with (a_l, k_l) the style's offset and gain, n_l = 1 for the plain bank, and w_l = 1 / L without level weights.
    """

    @staticmethod
    def forward(
        ctx,
        h0: torch.Tensor,
        grid_features: torch.Tensor,
        projections: torch.Tensor,
        trunk_weight: torch.Tensor,
        trunk_bias: torch.Tensor,
        head_weight: torch.Tensor,
        head_bias: torch.Tensor,
        level_weights: torch.Tensor | None,
        style_gain: torch.Tensor | None,
        style_offset: torch.Tensor | None,
        w0: float,
        eps: float,
    ) -> torch.Tensor:
        levels = projections.shape[0]
        styled = style_gain is not None
        level_grid = grid_features.transpose(0, 1)  # (L, N, F)
        filters = projections * (2 * math.pi)
        pre_embedding = torch.bmm(level_grid, filters)  # (L, N, H)
        embedding = torch.sin(pre_embedding)
        normalised = inverse_rms = None
        if styled:
            style = torch.addcmul(style_offset.unsqueeze(1), embedding, style_gain.unsqueeze(1))
            inverse_rms = torch.rsqrt(style.square().mean(dim=2, keepdim=True).add_(eps))  # (L, N, 1)
            normalised = style.mul_(inverse_rms)
        weight = trunk_weight * w0  # w0 folded into the (L, H, H) weights once
        bias = trunk_bias * w0
        pre = torch.empty_like(embedding)  # w0 (W_l x_l + b_l), each level's argument of the sine
        outputs = torch.empty_like(embedding)  # h_l
        inputs = torch.empty_like(embedding) if styled else None  # x_l = h_{l-1} * n_l
        h = h0
        for level in range(levels):
            if styled:
                h = torch.mul(h, normalised[level], out=inputs[level])
            torch.addmm(bias[level], h, weight[level].t(), out=pre[level])
            h = torch.sin(pre[level], out=outputs[level]).add_(embedding[level])
        heads = torch.bmm(outputs, head_weight)  # (L, N, O): h_l V_l
        if level_weights is None:
            features = torch.add(head_bias.mean(0), heads.sum(0), alpha=1.0 / levels)
        else:
            features = torch.addmm((heads * level_weights.t().unsqueeze(2)).sum(0), level_weights, head_bias)
        ctx.save_for_backward(
            *_Saved(
                h0, level_grid, filters, pre_embedding, embedding, weight, pre, outputs, inputs, normalised,
                inverse_rms, style_gain, head_weight, head_bias, None if level_weights is None else heads,
                level_weights,
            )
        )  # fmt: skip
        ctx.w0 = w0
        return features

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        saved = _Saved(*ctx.saved_tensors)
        h0, outputs, pre, weight = saved.h0, saved.outputs, saved.pre, saved.weight
        normalised, style_gain, level_weights = saved.normalised, saved.style_gain, saved.level_weights
        levels, points, _ = outputs.shape
        w0 = ctx.w0
        styled = style_gain is not None
        # the heads: grad_h_l = w_l grad V_l^T, grad_V_l = h_l^T (w_l grad), grad_c_l = sum_n w_l grad
        grad_weights = None
        if level_weights is None:
            level_grad = grad.expand(levels, points, grad.shape[1])
            grad_outputs = torch.bmm(level_grad, saved.head_weight.transpose(1, 2)).mul_(1.0 / levels)
            grad_head_weight = level_products(outputs, level_grad).mul_(1.0 / levels)
            grad_head_bias = (grad.sum(0) / levels).expand_as(saved.head_bias).clone()
        else:
            # (L, N, O) laid out level by level (with the weights' transpose as it is, the product takes the points'
            # layout, which `level_products` would copy)
            level_grad = grad * level_weights.t().contiguous().unsqueeze(2)
            grad_outputs = torch.bmm(level_grad, saved.head_weight.transpose(1, 2))
            grad_head_weight = level_products(outputs, level_grad)
            grad_head_bias = level_weights.t() @ grad
            if ctx.needs_input_grad[7]:
                grad_weights = torch.addmm((saved.heads * grad).sum(2).t(), grad, saved.head_bias.t())
        # the trunk, last level first: grad_outputs[l] becomes the gradient of h_l (and of e_l), grad_pre[l] that
        # of layer l's argument (cos of every level's argument at once), grad_inputs[l] that of its input x_l
        grad_pre = torch.cos(pre)
        grad_inputs = torch.empty_like(pre) if styled else None
        carried = None
        for level in reversed(range(levels)):
            grad_h = grad_outputs[level]
            if carried is not None:
                grad_h.add_(carried)
            grad_pre[level].mul_(grad_h)
            if styled:
                grad_input = torch.mm(grad_pre[level], weight[level], out=grad_inputs[level])
                carried = grad_input * normalised[level]  # x_l = h_{l-1} * n_l
            else:
                carried = torch.mm(grad_pre[level], weight[level])
        grad_h0 = carried
        # every layer's weights at once: grad_W_l = w0 grad_pre_l^T x_l, grad_b_l = w0 sum_n grad_pre_l
        if styled:
            grad_trunk_weight = level_products(grad_pre, saved.inputs)
        else:
            grad_trunk_weight = torch.empty_like(weight)
            torch.mm(grad_pre[0].t(), h0, out=grad_trunk_weight[0])
            if levels > 1:
                grad_trunk_weight[1:] = level_products(grad_pre[1:], outputs[:-1])
        grad_trunk_weight.mul_(w0)
        grad_trunk_bias = grad_pre.sum(1).mul_(w0)
        grad_embedding = grad_outputs  # h_l = sin(..) + e_l: the gradient of h_l is e_l's
        grad_gain = grad_offset = None
        if styled:
            # the gradient of n_l is grad_x_l * h_{l-1}; n = s / rms(s): ds = (dn - n mean(dn * n)) / rms(s), for
            # every level at once
            grad_normalised = grad_inputs
            grad_normalised[0].mul_(h0)
            if levels > 1:
                grad_normalised[1:].mul_(outputs[:-1])
            projection = (grad_normalised * normalised).mean(dim=2, keepdim=True)
            grad_style = grad_normalised.addcmul_(normalised, projection, value=-1.0).mul_(saved.inverse_rms)
            grad_gain = (grad_style * saved.embedding).sum(1)
            grad_offset = grad_style.sum(1)
            grad_embedding.addcmul_(grad_style, style_gain.unsqueeze(1))
        grad_pre_embedding = torch.cos(saved.pre_embedding).mul_(grad_embedding)
        grad_grid = torch.bmm(grad_pre_embedding, saved.filters.transpose(1, 2)).transpose(0, 1)  # (N, L, F)
        grad_projections = level_products(saved.level_grid, grad_pre_embedding).mul_(2 * math.pi)
        return (
            grad_h0,
            grad_grid,
            grad_projections,
            grad_trunk_weight,
            grad_trunk_bias,
            grad_head_weight,
            grad_head_bias,
            grad_weights,
            grad_gain,
            grad_offset,
            None,
            None,
        )
