"""Probes for optional accelerators. Every probe returns a bool and never raises.

This package (`nsr.accel`) is the only place that imports Triton or tiny-cuda-nn; the probes import
them lazily, on first call, and cache the answer. `has_ray` probes the optional Ray extra of `nsr batch`
(nsr.batch imports Ray only after asking it).
"""

from __future__ import annotations

import functools


@functools.cache
def has_cuda() -> bool:
    """A CUDA device is usable by torch."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


@functools.cache
def has_triton() -> bool:
    """Triton imports (it compiles kernels only for a GPU, or runs them under TRITON_INTERPRET=1)."""
    try:
        import triton
        import triton.language  # noqa: F401

        return True
    except Exception:
        return False


@functools.cache
def has_tcnn() -> bool:
    """tiny-cuda-nn's torch bindings import (they need a CUDA device at import)."""
    try:
        import tinycudann  # noqa: F401

        return True
    except Exception:
        return False


@functools.cache
def has_ray() -> bool:
    """Ray imports (the optional `nsr[ray]` extra that `nsr batch` schedules runs with)."""
    try:
        import ray  # noqa: F401

        return True
    except Exception:
        return False


__all__ = ["has_cuda", "has_ray", "has_tcnn", "has_triton"]
