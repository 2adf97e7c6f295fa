"""The background beyond the bounding sphere (NeRF++): density and view-dependent colour of a 4D point.

Points outside the bounding sphere of radius R are given in NeRF++'s inverted-sphere coordinates
(x / |x|, R / |x|) (`nsr.renderers.volume.inverted_sphere`): a bounded 4D domain for an unbounded space,
with resolution falling off with distance. The volume renderer composites this background behind the
foreground with the foreground's remaining transmittance.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nsr import checks
from nsr.encodings import EncodingConfig, PositionalEncodingConfig


@dataclass
class BackgroundFieldConfig:
    """A small NeRF on the inverted sphere: encoded 4D point -> MLP -> density, feature; + view -> colour."""

    encoding: EncodingConfig = field(default_factory=lambda: PositionalEncodingConfig(num_frequencies=10))
    """Encoding of the 4D point (an encoding that takes any input width: positional or fourier)."""
    view_encoding: EncodingConfig = field(default_factory=lambda: PositionalEncodingConfig(num_frequencies=4))
    """Encoding of the view direction."""
    hidden_dim: int = 128
    """Width of the density trunk."""
    num_layers: int = 4
    """Hidden layers of the density trunk (ReLU)."""
    colour_hidden_dim: int = 64
    """Width of the one hidden layer of the colour head."""

    def validate(self) -> None:
        checks.positive("hidden_dim", self.hidden_dim)
        checks.positive("num_layers", self.num_layers)
        checks.positive("colour_hidden_dim", self.colour_hidden_dim)

    def build(self) -> BackgroundField:
        return BackgroundField(self)


class BackgroundField(nn.Module):
    """(points (M, 4) inverted-sphere coordinates, view_dirs (M, 3)) -> (density (M,) >= 0, rgb (M, 3)).

    Density is softplus of the trunk's first output (NeuS), colour a sigmoid of the colour head, which
    sees the trunk's features and the encoded view direction. The tuple is what the volume renderer's
    `background_fn` returns.
    """

    def __init__(self, config: BackgroundFieldConfig) -> None:
        super().__init__()
        self.config = config
        self.encoding = config.encoding.build(4)
        self.view_encoding = config.view_encoding.build(3)
        dims = [self.encoding.out_dim] + [config.hidden_dim] * config.num_layers
        self.trunk = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.density_head = nn.Linear(config.hidden_dim, 1)
        self.colour_hidden = nn.Linear(
            config.hidden_dim + self.view_encoding.out_dim, config.colour_hidden_dim
        )
        self.colour_head = nn.Linear(config.colour_hidden_dim, 3)

    def forward(self, points: torch.Tensor, view_dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoding(points)
        for layer in self.trunk:
            h = torch.relu(layer(h))
        density = F.softplus(self.density_head(h)[:, 0])
        c = torch.relu(self.colour_hidden(torch.cat([h, self.view_encoding(view_dirs)], dim=-1)))
        return density, torch.sigmoid(self.colour_head(c))
