import math

import pytest
import torch

from nsr.encodings import FourierFeaturesConfig


def test_layout_and_values():
    enc = FourierFeaturesConfig(width=5, sigma=2.0).build(3)
    x = torch.rand(7, 3)
    y = enc(x)
    assert enc.out_dim == 3 + 2 * 5 == y.shape[1] and enc.includes_input
    assert torch.equal(y[:, :3], x)
    angles = 2 * math.pi * x @ enc.matrix
    assert torch.allclose(y[:, 3:8], torch.sin(angles), atol=1e-5)
    assert torch.allclose(y[:, 8:], torch.cos(angles), atol=1e-5)
    no_input = FourierFeaturesConfig(width=5, include_input=False).build(2)
    assert no_input.out_dim == 10 and not no_input.includes_input
    assert no_input(torch.rand(4, 2)).shape == (4, 10)


def test_matrix_is_seeded_gaussian_with_sigma():
    a = FourierFeaturesConfig(width=4000, sigma=3.0, seed=1).build(3)
    b = FourierFeaturesConfig(width=4000, sigma=3.0, seed=1).build(3)
    c = FourierFeaturesConfig(width=4000, sigma=3.0, seed=2).build(3)
    assert a.matrix.shape == (3, 4000)
    assert torch.equal(a.matrix, b.matrix) and not torch.equal(a.matrix, c.matrix)
    assert a.matrix.std().item() == pytest.approx(3.0, rel=0.03)
    assert abs(a.matrix.mean().item()) < 0.1


def test_matrix_round_trips_through_the_state_dict():
    saved = FourierFeaturesConfig(width=8, seed=3).build(3)
    state = saved.state_dict()
    assert "matrix" in state
    loaded = FourierFeaturesConfig(width=8, seed=99).build(3)
    assert not torch.equal(loaded.matrix, saved.matrix)
    loaded.load_state_dict(state)
    x = torch.rand(5, 3)
    assert torch.equal(loaded(x), saved(x))


def test_bad_widths_are_rejected():
    with pytest.raises(ValueError, match="width"):
        FourierFeaturesConfig(width=0, include_input=False).build(3)
    with pytest.raises(ValueError, match="sigma"):
        FourierFeaturesConfig(sigma=-1.0).build(3)
