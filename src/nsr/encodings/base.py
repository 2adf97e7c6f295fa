"""The interface every input encoding implements."""

from __future__ import annotations

import torch
from torch import nn


class Encoding(nn.Module):
    """Maps (N, in_dim) inputs to (N, out_dim) features.

    Encodings whose output starts with the raw input (`includes_input = True`, channels
    0..in_dim-1 equal the input) let the SDF field apply the geometric (sphere) initialisation.
    Encodings with a schedule (coarse-to-fine frequencies or levels) implement `set_step`, which the
    trainer calls through the model's callbacks before each step.
    """

    in_dim: int
    out_dim: int
    includes_input: bool = False

    def set_step(self, step: int) -> None:
        """Update step-dependent state (coarse-to-fine windows). Default: nothing to do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
