import math

import torch

from nsr.encodings import PositionalEncodingConfig


def test_layout_and_values():
    enc = PositionalEncodingConfig(num_frequencies=3).build(3)
    x = torch.rand(7, 3)
    y = enc(x)
    assert enc.out_dim == 3 + 2 * 3 * 3 == y.shape[1]
    assert enc.includes_input
    assert torch.equal(y[:, :3], x)
    # band k=2: sin(4 pi x), cos(4 pi x)
    assert torch.allclose(y[:, 3 + 12 : 3 + 15], torch.sin(4 * math.pi * x), atol=1e-5)
    assert torch.allclose(y[:, 3 + 15 : 3 + 18], torch.cos(4 * math.pi * x), atol=1e-5)


def test_without_input_and_identity():
    assert PositionalEncodingConfig(num_frequencies=2, include_input=False).build(3).out_dim == 12
    ident = PositionalEncodingConfig(num_frequencies=0).build(3)
    x = torch.rand(4, 3)
    assert torch.equal(ident(x), x)


def test_coarse_to_fine_window():
    enc = PositionalEncodingConfig(num_frequencies=4, coarse_to_fine=0.5).build(3)
    x = torch.rand(5, 3)
    enc.set_progress(0.0)
    assert torch.count_nonzero(enc(x)[:, 3:]) == 0
    enc.set_progress(0.25)  # two of four bands fully on
    y = enc(x)[:, 3:].reshape(5, 4, 2, 3)
    assert y[:, :2].abs().sum() > 0 and y[:, 2:].abs().sum() == 0
    enc.set_progress(0.5)
    assert torch.allclose(enc(x), PositionalEncodingConfig(num_frequencies=4).build(3)(x))
