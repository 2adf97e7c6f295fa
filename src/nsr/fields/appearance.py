"""The appearance network: colour from point, normal, view direction and geometry features (IDR)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from nsr import checks
from nsr.encodings import EncodingConfig, PositionalEncodingConfig


@dataclass
class AppearanceFieldConfig:
    """IDR rendering network: MLP (ReLU, weight norm) -> sigmoid RGB in [0, 1]."""

    mode: Literal["idr", "no_view_dir", "no_normal"] = "idr"
    """Inputs: `idr` = point, view direction, normal, features; the others drop one of them."""
    view_encoding: EncodingConfig = field(default_factory=lambda: PositionalEncodingConfig(num_frequencies=4))
    """Encoding of the view direction (unused in `no_view_dir` mode)."""
    hidden_dim: int = 256
    """Width of the hidden layers."""
    num_layers: int = 4
    """Number of hidden layers."""
    weight_norm: bool = True
    """Weight normalisation on every linear layer."""

    def validate(self) -> None:
        checks.positive("hidden_dim", self.hidden_dim)
        checks.non_negative("num_layers", self.num_layers)

    def build(self, feature_dim: int) -> AppearanceField:
        return AppearanceField(self, feature_dim)


class AppearanceField(nn.Module):
    """(points, normals, view_dirs, features) -> (N, 3) colours in [0, 1].

    Normals are the raw SDF gradients (unit length once the eikonal term has converged), as in IDR.
    View directions point from the camera to the point.
    """

    def __init__(self, config: AppearanceFieldConfig, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        self.feature_dim = feature_dim
        self.view_encoding = config.view_encoding.build(3) if config.mode != "no_view_dir" else None
        in_dim = 3 + feature_dim
        if config.mode in ("idr", "no_normal"):
            in_dim += self.view_encoding.out_dim
        if config.mode in ("idr", "no_view_dir"):
            in_dim += 3
        dims = [in_dim] + [config.hidden_dim] * config.num_layers + [3]
        layers = []
        for i in range(len(dims) - 1):
            layer = nn.Linear(dims[i], dims[i + 1])
            layers.append(weight_norm(layer) if config.weight_norm else layer)
        self.layers = nn.ModuleList(layers)

    def forward(
        self, points: torch.Tensor, normals: torch.Tensor, view_dirs: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        parts = [points]
        if self.view_encoding is not None:
            parts.append(self.view_encoding(view_dirs))
        if self.config.mode != "no_normal":
            parts.append(normals)
        parts.append(features)
        h = torch.cat(parts, dim=-1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return torch.sigmoid(h)

    @torch.no_grad()
    def start_at(self, rgb: torch.Tensor) -> None:
        """Set the last layer's bias so that the colour of a zero pre-activation is `rgb` (3,) instead of
        mid-grey (sigmoid(0) = 0.5); the weights keep their initialisation."""
        self.layers[-1].bias.copy_(torch.logit(rgb.to(self.layers[-1].bias).clamp(0.02, 0.98)))
