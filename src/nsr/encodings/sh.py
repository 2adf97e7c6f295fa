"""Real spherical harmonics of a direction (view directions), instant-ngp constants and signs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from nsr import checks
from nsr.encodings.base import Encoding

MAX_DEGREE = 5


@dataclass
class SphericalHarmonicsConfig:
    """Real SH basis of the unit direction, bands l = 0 .. degree - 1 (degree^2 outputs)."""

    kind: Literal["sh"] = "sh"
    degree: int = 4
    """Number of bands D, 1 to 5; the output has D^2 channels (D = 4 -> 16, as in instant-ngp)."""

    def validate(self) -> None:
        checks.in_range("degree", self.degree, 1, 5)

    def build(self, in_dim: int) -> SphericalHarmonics:
        return SphericalHarmonics(in_dim, self)


def spherical_harmonics(d: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis (N, degree^2) of unit directions d (N, 3).

    Ordering and signs are instant-ngp's: band l occupies channels l^2 .. (l+1)^2 - 1, ordered
    m = -l .. l, with Y_{l,m} = sqrt(2) Im(Y_l^|m|) for m < 0, Y_l^0 for m = 0 and
    sqrt(2) Re(Y_l^m) for m > 0, where Y_l^m is the complex harmonic with the Condon-Shortley
    phase (scipy's `sph_harm_y`); so band 1 is (-C1 y, C1 z, -C1 x).
    """
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (xx - yy),
        ]
    if degree > 3:
        out += [
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ]
    if degree > 4:
        out += [
            2.5033429417967046 * xy * (xx - yy),
            1.7701307697799304 * yz * (-3.0 * xx + yy),
            0.94617469575756008 * xy * (7.0 * zz - 1.0),
            0.66904654355728921 * yz * (3.0 - 7.0 * zz),
            -3.1735664074561294 * zz + 3.7024941420321507 * zz * zz + 0.31735664074561293,
            0.66904654355728921 * xz * (3.0 - 7.0 * zz),
            0.47308734787878004 * (xx - yy) * (7.0 * zz - 1.0),
            1.7701307697799304 * xz * (-xx + 3.0 * yy),
            -3.7550144126950569 * xx * yy + 0.62583573544917614 * (xx * xx + yy * yy),
        ]
    return torch.stack(out, dim=-1)


class SphericalHarmonics(Encoding):
    """d (N, 3) -> (N, degree^2). Inputs are normalised to unit length first (zero stays zero).

    Meant for view directions: it sees only the direction, so it does not include the input and
    cannot carry the SDF field's geometric initialisation.
    """

    def __init__(self, in_dim: int, config: SphericalHarmonicsConfig) -> None:
        super().__init__()
        if in_dim != 3:
            raise ValueError(
                f"sh: spherical harmonics encode 3D directions, got in_dim {in_dim}; use it for view directions"
            )
        if not 1 <= config.degree <= MAX_DEGREE:
            raise ValueError(f"sh: degree must be between 1 and {MAX_DEGREE}, got {config.degree}")
        self.config = config
        self.in_dim = in_dim
        self.includes_input = False
        self.out_dim = config.degree**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.nn.functional.normalize(x, dim=-1)
        return spherical_harmonics(d, self.config.degree)
