"""tiny-cuda-nn's hash grid behind a plain constructor (imported only when the `tcnn` backend is asked for)."""

from __future__ import annotations

import torch
from torch import nn

from nsr.accel.probe import has_tcnn


def make_tcnn_hashgrid(
    in_dim: int,
    num_levels: int,
    features_per_level: int,
    log2_table_size: int,
    base_resolution: int,
    per_level_scale: float,
    smoothstep: bool = False,
) -> nn.Module:
    """A `tcnn.Encoding` hash grid taking (N, in_dim) points in [0, 1]^D to (N, L * F) features.

    tiny-cuda-nn places its level vertices as instant-ngp does (scale = N_min b^l - 1, offset 0.5),
    so its features are not bit-identical to NSR's reference; it supports the double backward with
    respect to the input that the analytic eikonal term needs.
    """
    if not has_tcnn():
        raise ValueError(
            "hash grid backend 'tcnn' needs tiny-cuda-nn's torch bindings (tinycudann), which are not "
            "installed or found no CUDA device; use backend 'fused', 'torch' or 'auto'"
        )
    import tinycudann as tcnn

    config = {
        "otype": "Grid",
        "type": "Hash",
        "n_levels": num_levels,
        "n_features_per_level": features_per_level,
        "log2_hashmap_size": log2_table_size,
        "base_resolution": base_resolution,
        "per_level_scale": per_level_scale,
        "interpolation": "Smoothstep" if smoothstep else "Linear",
    }
    try:
        return tcnn.Encoding(in_dim, config, dtype=torch.float32)
    except TypeError:  # older bindings without the dtype argument (fp16 output; the caller casts)
        return tcnn.Encoding(in_dim, config)


__all__ = ["make_tcnn_hashgrid"]
