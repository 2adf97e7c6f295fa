"""NeRF positional (frequency) encoding."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from nsr import checks
from nsr.encodings.base import Encoding


@dataclass
class PositionalEncodingConfig:
    """NeRF frequency encoding: x -> [x, sin(2^k pi x), cos(2^k pi x)] for k = 0..K-1."""

    kind: Literal["positional"] = "positional"
    num_frequencies: int = 6
    """K, the number of log-spaced frequency bands (0 = identity)."""
    include_input: bool = True
    """Put the raw input first in the output (needed for the SDF field's geometric init)."""
    use_pi: bool = True
    """Multiply the frequencies by pi (NeRF); IDR's original code omits it."""
    coarse_to_fine: float = 0.0
    """If > 0, bands are faded in over this fraction of the run (Nerfies/BARF window); 0 = all on."""

    def validate(self) -> None:
        checks.non_negative("num_frequencies", self.num_frequencies, "0 = identity")
        checks.fraction("coarse_to_fine", self.coarse_to_fine)

    def build(self, in_dim: int) -> PositionalEncoding:
        return PositionalEncoding(in_dim, self)


class PositionalEncoding(Encoding):
    """x (N, D) -> (N, D * include_input + 2 * D * K), ordered [x, sin(f0 x), cos(f0 x), sin(f1 x), ...]."""

    def __init__(self, in_dim: int, config: PositionalEncodingConfig) -> None:
        super().__init__()
        self.config = config
        self.in_dim = in_dim
        self.includes_input = config.include_input
        k = config.num_frequencies
        self.out_dim = in_dim * int(config.include_input) + 2 * in_dim * k
        scale = math.pi if config.use_pi else 1.0
        self.register_buffer(
            "frequencies", scale * 2.0 ** torch.arange(k, dtype=torch.float32), persistent=False
        )
        self.register_buffer("window", torch.ones(k), persistent=False)
        if self.out_dim == 0:
            raise ValueError("positional encoding with no frequencies must include the input")

    def set_progress(self, progress: float) -> None:
        span = self.config.coarse_to_fine
        k = self.config.num_frequencies
        if span <= 0 or k == 0:
            return
        alpha = k * min(1.0, progress / span)
        bands = torch.arange(k, dtype=torch.float32, device=self.window.device)
        weight = (1 - torch.cos(math.pi * (alpha - bands).clamp(0, 1))) / 2
        self.window.copy_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x] if self.config.include_input else []
        if self.config.num_frequencies:
            angles = x[:, None, :] * self.frequencies[None, :, None]  # (N, K, D)
            w = self.window[None, :, None]
            enc = torch.stack([torch.sin(angles) * w, torch.cos(angles) * w], dim=2)  # (N, K, 2, D)
            parts.append(enc.reshape(x.shape[0], 2 * self.in_dim * self.config.num_frequencies))
        return torch.cat(parts, dim=-1)
