"""Random Fourier features (Tancik et al. 2020): x -> [x, sin(2 pi x B), cos(2 pi x B)]."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from nsr import checks
from nsr.encodings.base import Encoding


@dataclass
class FourierFeaturesConfig:
    """Gaussian random Fourier features with a seeded, checkpointed projection matrix."""

    kind: Literal["fourier"] = "fourier"
    width: int = 64
    """C, the number of random frequencies (the output has 2 C Fourier channels)."""
    sigma: float = 1.0
    """Standard deviation of the Gaussian matrix B, in cycles per unit of input."""
    include_input: bool = True
    """Put the raw input first in the output (needed for the SDF field's geometric init)."""
    seed: int = 0
    """Seed of the generator that draws B (the matrix is also saved in checkpoints)."""

    def validate(self) -> None:
        checks.positive("width", self.width)
        checks.positive("sigma", self.sigma)
        checks.non_negative("seed", self.seed)

    def build(self, in_dim: int) -> FourierFeatures:
        return FourierFeatures(in_dim, self)


class FourierFeatures(Encoding):
    """x (N, D) -> (N, D * include_input + 2 C), ordered [x, sin(2 pi x B), cos(2 pi x B)].

    B (D, C) ~ N(0, sigma^2) is a persistent buffer: it is part of the state dict, so a checkpoint
    restores the exact frequencies even if the seed or the generator changes.
    """

    def __init__(self, in_dim: int, config: FourierFeaturesConfig) -> None:
        super().__init__()
        if config.width < 0 or config.sigma < 0:
            raise ValueError(f"fourier: width ({config.width}) and sigma ({config.sigma}) must be >= 0")
        if config.width == 0 and not config.include_input:
            raise ValueError("fourier encoding with width 0 must include the input")
        self.config = config
        self.in_dim = in_dim
        self.includes_input = config.include_input
        self.out_dim = in_dim * int(config.include_input) + 2 * config.width
        generator = torch.Generator().manual_seed(config.seed)
        matrix = torch.randn(in_dim, config.width, generator=generator) * config.sigma
        self.register_buffer("matrix", matrix, persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x] if self.config.include_input else []
        if self.config.width:
            angles = 2 * math.pi * (x @ self.matrix.to(x.dtype))  # (N, C)
            parts += [torch.sin(angles), torch.cos(angles)]
        return torch.cat(parts, dim=-1)
