"""NeuS's learned variance: one scalar that sets how sharply the SDF turns into opacity."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nsr import checks


@dataclass
class VarianceConfig:
    """NeuS's single variance parameter v, with inverse standard deviation s = exp(scale * v)."""

    init_value: float = 0.3
    """Initial v (NeuS: 0.3, i.e. s = exp(3) = 20: a soft surface at the start)."""
    scale: float = 10.0
    """s = exp(scale * v): the scale makes s move by orders of magnitude at a normal learning rate."""

    def validate(self) -> None:
        checks.positive("scale", self.scale)

    def build(self) -> SingleVariance:
        return SingleVariance(self)


class SingleVariance(nn.Module):
    """Holds v; `inv_s()` is the 0-d tensor s = exp(scale * v), clamped to [1e-6, 1e6].

    The logistic density of the SDF has standard deviation pi / (sqrt(3) s); training raises s as the
    surface sharpens.
    """

    def __init__(self, config: VarianceConfig) -> None:
        super().__init__()
        self.config = config
        self.variance = nn.Parameter(torch.tensor(float(config.init_value)))

    def inv_s(self) -> torch.Tensor:
        """The inverse standard deviation s (0-d, differentiable in v)."""
        return torch.exp(self.variance * self.config.scale).clamp(1e-6, 1e6)

    def forward(self) -> torch.Tensor:
        return self.inv_s()
