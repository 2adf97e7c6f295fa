"""The spatial-hash primes shared by the PyTorch hash grid and the fused kernel."""

from __future__ import annotations

import torch

PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)
"""instant-ngp's spatial-hash primes, one per input dimension (the first is 1 for coherence)."""

_ON_DEVICE: dict[torch.device, torch.Tensor] = {}


def primes_on(device: torch.device) -> torch.Tensor:
    """The primes as an int64 tensor on `device`, made once per device: a host-to-device copy inside a
    CUDA-graph capture is not allowed, and the traced SDF is captured after warm-up calls."""
    if device not in _ON_DEVICE:
        _ON_DEVICE[device] = torch.tensor(PRIMES, dtype=torch.int64, device=device)
    return _ON_DEVICE[device]
