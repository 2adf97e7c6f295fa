import math

import numpy as np
import pytest
import torch

from nsr.encodings import SphericalHarmonicsConfig
from nsr.encodings.sh import spherical_harmonics


def _quadrature(n_theta=12, n_phi=24):
    """Gauss-Legendre in cos(theta) x uniform in phi: exact for polynomials of degree < 2 n_theta on the sphere."""
    nodes, weights = np.polynomial.legendre.leggauss(n_theta)
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    ct, ph = np.meshgrid(nodes, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    d = np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3)
    w = (weights[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).reshape(-1)
    return torch.from_numpy(d), torch.from_numpy(w)


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 5])
def test_shapes(degree):
    enc = SphericalHarmonicsConfig(degree=degree).build(3)
    assert enc.out_dim == degree**2 and not enc.includes_input
    assert enc(torch.randn(6, 3)).shape == (6, degree**2)


def test_orthonormal_on_the_sphere():
    d, w = _quadrature()
    y = spherical_harmonics(d, 5)  # (N, 25), float64
    gram = (y * w[:, None]).T @ y
    assert torch.allclose(gram, torch.eye(25, dtype=torch.float64), atol=1e-12)


def test_matches_scipy_with_the_real_sign_convention():
    special = pytest.importorskip("scipy.special")
    if not hasattr(special, "sph_harm_y"):
        pytest.skip("scipy >= 1.15 needed for sph_harm_y")
    rng = np.random.default_rng(0)
    d = rng.normal(size=(50, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    theta, phi = np.arccos(d[:, 2]), np.arctan2(d[:, 1], d[:, 0])
    ours = spherical_harmonics(torch.from_numpy(d), 5).numpy()
    for band in range(5):
        for m in range(-band, band + 1):
            y = special.sph_harm_y(band, abs(m), theta, phi)  # complex, Condon-Shortley phase
            ref = {-1: math.sqrt(2) * y.imag, 0: y.real, 1: math.sqrt(2) * y.real}[int(np.sign(m))]
            np.testing.assert_allclose(
                ours[:, band * band + band + m], ref, atol=1e-10, err_msg=f"l={band} m={m}"
            )


def test_instant_ngp_band_one_and_normalisation():
    enc = SphericalHarmonicsConfig(degree=2).build(3)
    d = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.0]])  # not unit: normalised inside
    c1 = 0.48860251190291987
    expected = torch.tensor([[0.28209479, 0.0, c1, 0.0], [0.28209479, 0.0, 0.0, -c1]])
    assert torch.allclose(enc(d), expected, atol=1e-6)


def test_errors_speak():
    with pytest.raises(ValueError, match="in_dim 2"):
        SphericalHarmonicsConfig().build(2)
    with pytest.raises(ValueError, match="degree"):
        SphericalHarmonicsConfig(degree=6).build(3)
