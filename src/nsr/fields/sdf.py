"""The geometry network: an MLP signed distance field with a feature vector output (IDR)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from nsr import checks
from nsr.encodings import Encoding, EncodingConfig, PositionalEncodingConfig


@dataclass
class SDFFieldConfig:
    """IDR implicit network: encoding -> MLP (Softplus, skip connection, weight norm) -> [sdf, features]."""

    encoding: EncodingConfig = field(default_factory=lambda: PositionalEncodingConfig(num_frequencies=6))
    """Encoding of the 3D points."""
    hidden_dim: int = 256
    """Width of the hidden layers."""
    num_layers: int = 8
    """Number of hidden layers."""
    skip_layers: tuple[int, ...] = (4,)
    """Layers whose input is concatenated with the encoded point (divided by sqrt 2)."""
    feature_dim: int = 256
    """Size of the feature vector passed to the appearance field (0 = none)."""
    softplus_beta: float = 100.0
    """Sharpness of the Softplus activation."""
    weight_norm: bool = True
    """Weight normalisation on every linear layer."""
    geometric_init: bool = True
    """Initialise the SDF to a sphere of radius `init_radius` (for encodings that keep the raw input)."""
    init_radius: float = 0.6
    """Radius of the initial sphere, in normalised units."""
    gradient: Literal["analytic", "finite_difference"] = "analytic"
    """Spatial gradient for normals and the eikonal term: autograd (double backward through the encoding),
    or finite differences of SDF values (first-order backward only; needed by the fused hash grid)."""
    finite_difference_taps: Literal[4, 6] = 4
    """Finite-difference stencil: 4 taps (tetrahedron, Neuralangelo's default) or 6 (central differences)."""
    finite_difference_step: float = 1e-3
    """Finite-difference step when the encoding suggests none (grids suggest half a cell of the finest
    active level, which shrinks as coarse-to-fine unlocks levels)."""

    def validate(self) -> None:
        checks.positive("hidden_dim", self.hidden_dim)
        checks.positive("num_layers", self.num_layers)
        for layer in self.skip_layers:
            checks.in_range("skip_layers", layer, 1, self.num_layers, "hidden-layer indices")
        checks.non_negative("feature_dim", self.feature_dim, "0 = none")
        checks.positive("softplus_beta", self.softplus_beta)
        checks.positive("init_radius", self.init_radius)
        checks.positive("finite_difference_step", self.finite_difference_step)

    def build(self) -> SDFField:
        return SDFField(self, self.encoding.build(3))


@dataclass
class SDFOutput:
    """Field values at N points."""

    sdf: torch.Tensor
    """(N,) signed distances (positive outside)."""
    features: torch.Tensor
    """(N, F) feature vectors."""
    gradient: torch.Tensor | None = None
    """(N, 3) spatial gradient of the SDF, when asked for."""
    laplacian: torch.Tensor | None = None
    """(N,) Laplacian of the SDF (finite differences), when asked for (curvature loss)."""


def stencil_offsets(taps: int, device=None, dtype=None) -> torch.Tensor:
    """Unit offsets of a finite-difference stencil: 6 (+-x, +-y, +-z) or 4 (tetrahedron vertices, with
    sum_k v_k = 0 and sum_k v_k v_k^T = 4 I)."""
    if taps == 6:
        eye = torch.eye(3, device=device, dtype=dtype)
        return torch.cat([eye, -eye])  # (6, 3): +x, +y, +z, -x, -y, -z
    if taps == 4:
        # (1, -1, -1), (-1, -1, 1), (-1, 1, -1), (1, 1, 1), made on the device (no host copy: a captured
        # CUDA graph cannot contain one)
        base = 2 * torch.eye(3, device=device, dtype=dtype) - 1
        return torch.stack([base[0], base[2], base[1], torch.ones_like(base[0])])
    raise ValueError(f"finite-difference stencils have 4 or 6 taps, not {taps}")


def finite_difference_derivatives(
    centre: torch.Tensor, values: torch.Tensor, step: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and Laplacian of f at N points from its values at the taps x + step * v_k.

    Args:
        centre: (N,) f(x).
        values: (K, N) f at the taps of `stencil_offsets(K)` (K = 6 or 4), in that order.

    Returns:
        gradient (N, 3) and Laplacian (N,). With 6 taps, central differences: errors O(h^2). With 4 taps
        (Neuralangelo's tetrahedron), grad = sum_k f_k v_k / (4h) and
        lap = (sum_k f_k - 4 f) / (2 h^2) = tr H + 2 h f_xyz + O(h^2) (the tetrahedron's odd moment).
    """
    k, h = values.shape[0], step
    if k == 6:
        grad = (values[:3] - values[3:]).T / (2 * h)
        lap = (values.sum(0) - 6 * centre) / h**2
    else:
        offsets = stencil_offsets(4, values.device, values.dtype)
        grad = torch.einsum("kn,kd->nd", values, offsets) / (4 * h)
        lap = (values.sum(0) - 4 * centre) / (2 * h**2)
    return grad, lap


class SDFField(nn.Module):
    """x (N, 3) in the normalised frame -> SDFOutput."""

    def __init__(self, config: SDFFieldConfig, encoding: Encoding) -> None:
        super().__init__()
        self.config = config
        self.encoding = encoding
        enc_dim = encoding.out_dim
        if config.skip_layers and config.hidden_dim <= enc_dim:
            raise ValueError(
                f"hidden_dim {config.hidden_dim} must exceed the encoding width {enc_dim} for skip connections"
            )
        dims = [enc_dim] + [config.hidden_dim] * config.num_layers + [1 + config.feature_dim]
        self.skip_layers = set(config.skip_layers)
        layers = []
        for i in range(len(dims) - 1):
            in_dim = dims[i]
            out_dim = dims[i + 1] - enc_dim if (i + 1) in self.skip_layers else dims[i + 1]
            if i in self.skip_layers:
                in_dim = dims[i] if i == 0 else config.hidden_dim
            layer = nn.Linear(in_dim, out_dim)
            if config.geometric_init:
                self._geometric_init(layer, i, len(dims) - 2, enc_dim)
            layers.append(weight_norm(layer) if config.weight_norm else layer)
        self.layers = nn.ModuleList(layers)
        self.activation = nn.Softplus(beta=config.softplus_beta)
        if config.gradient == "analytic":
            encoding.require_double_backward()
        if config.geometric_init:
            self._centre_init_sphere()

    def _geometric_init(self, layer: nn.Linear, index: int, last: int, enc_dim: int) -> None:
        """IGR/IDR initialisation: the network starts as the SDF of a sphere, |x| - r."""
        out_dim, in_dim = layer.weight.shape
        keep_raw = self.encoding.includes_input
        with torch.no_grad():
            if index == last:
                layer.weight.normal_(math.sqrt(math.pi) / math.sqrt(in_dim), 1e-4)
                layer.bias.fill_(-self.config.init_radius)
                return
            layer.weight.normal_(0.0, math.sqrt(2) / math.sqrt(out_dim))
            layer.bias.zero_()
            if keep_raw and index == 0:
                layer.weight[:, 3:] = 0.0
            elif keep_raw and index in self.skip_layers and enc_dim > 3:
                layer.weight[:, -(enc_dim - 3) :] = 0.0

    @torch.no_grad()
    def _centre_init_sphere(self) -> None:
        """Shift the last bias so the SDF's mean on the sphere of radius `init_radius` is zero.

        The softplus offsets of a finite-width network add a constant to IDR's initialisation, which
        otherwise moves the zero level set away from the requested radius (by ~0.1 at width 256).
        """
        n = 2048
        i = torch.arange(n, dtype=torch.float32) + 0.5
        z = 1 - 2 * i / n
        phi = i * math.pi * (3 - math.sqrt(5))
        ring = torch.sqrt(1 - z**2)
        points = torch.stack([ring * torch.cos(phi), ring * torch.sin(phi), z], -1) * self.config.init_radius
        offset = self.forward(points).sdf.mean()
        self.layers[-1].bias[0] -= offset

    def forward(self, x: torch.Tensor) -> SDFOutput:
        encoded = self.encoding(x)
        h = encoded
        for i, layer in enumerate(self.layers):
            if i in self.skip_layers:
                h = torch.cat([h, encoded], dim=-1) / math.sqrt(2)
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return SDFOutput(sdf=h[:, 0], features=h[:, 1:])

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) -> (N,) signed distance only."""
        return self.forward(x).sdf

    def finite_difference_step(self) -> float:
        """The current finite-difference step: the encoding's suggestion, else the configured one."""
        step = self.encoding.finite_difference_step()
        return self.config.finite_difference_step if step is None else float(step)

    def with_gradient(self, x: torch.Tensor, create_graph: bool = True, laplacian: bool = False) -> SDFOutput:
        """Values and spatial gradient at x; `create_graph` keeps the graph for second-order losses.

        With `gradient = "finite_difference"` the gradient is a 4- or 6-tap difference of SDF values,
        all taps evaluated in one batch with the centre; it is differentiable (first order) in the
        parameters and in x when `create_graph`, and detached otherwise.

        `laplacian`: also return the SDF's Laplacian (`SDFOutput.laplacian`, for Neuralangelo's curvature
        loss) from the same taps (`finite_difference_derivatives`); with analytic gradients, from the
        6-tap stencil evaluated in the same batch. Same graph rules as the gradient.
        """
        if self.config.gradient == "finite_difference":
            return self._finite_difference(x, create_graph, laplacian)
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            if laplacian:
                out, lap = self._with_taps(x, 6)
            else:
                out = self.forward(x)
            (grad,) = torch.autograd.grad(
                out.sdf, x, torch.ones_like(out.sdf), create_graph=create_graph, retain_graph=create_graph
            )
        out.gradient = grad
        if laplacian:
            out.laplacian = lap if create_graph else lap.detach()
        return out

    def _with_taps(self, x: torch.Tensor, taps: int) -> tuple[SDFOutput, torch.Tensor]:
        """The field at x and its finite-difference gradient (in `.gradient`) and Laplacian, in one batch."""
        h = self.finite_difference_step()
        offsets = stencil_offsets(taps, x.device, x.dtype)
        n = x.shape[0]
        # Evaluated in the caller's grad mode: the centre values behave as `forward`'s would.
        points = (x[None, :, :] + h * offsets[:, None, :]).reshape(-1, 3)
        out = self.forward(torch.cat([x, points]))
        centre = out.sdf[:n]
        grad, lap = finite_difference_derivatives(centre, out.sdf[n:].view(taps, n), h)
        return SDFOutput(sdf=centre, features=out.features[:n], gradient=grad), lap

    def _finite_difference(self, x: torch.Tensor, create_graph: bool, laplacian: bool = False) -> SDFOutput:
        out, lap = self._with_taps(x, self.config.finite_difference_taps)
        if not create_graph:
            out.gradient, lap = out.gradient.detach(), lap.detach()
        if laplacian:
            out.laplacian = lap
        return out
