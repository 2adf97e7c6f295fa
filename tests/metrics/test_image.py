"""MSE / PSNR with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nsr.metrics import mse, psnr


def test_constant_offset_gives_20_db() -> None:
    target = np.full((8, 6, 3), 0.5)
    assert mse(target + 0.1, target) == pytest.approx(0.01)
    assert psnr(target + 0.1, target) == pytest.approx(20.0)


def test_identical_is_inf() -> None:
    image = np.random.default_rng(0).random((5, 5, 3))
    assert psnr(image, image.copy()) == math.inf


def test_torch_and_numpy_agree() -> None:
    rng = np.random.default_rng(1)
    pred, target = rng.random((7, 9, 3)), rng.random((7, 9, 3))
    expected = -10.0 * math.log10(np.mean((pred - target) ** 2))
    assert psnr(pred, target) == pytest.approx(expected)
    assert psnr(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(expected)
    assert psnr(torch.from_numpy(pred).float(), target) == pytest.approx(expected, abs=1e-4)


def test_mask_counts_only_masked_pixels() -> None:
    target = np.zeros((4, 4, 3))
    pred = target.copy()
    pred[:2] = 0.1  # error only in the top half
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2] = True
    assert psnr(pred, target, mask) == pytest.approx(20.0)
    assert psnr(pred, target, ~mask) == math.inf
    assert mse(pred, target) == pytest.approx(0.005)
    assert psnr(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)) == pytest.approx(
        20.0
    )


def test_bad_inputs_speak() -> None:
    image = np.zeros((4, 4, 3))
    with pytest.raises(ValueError, match="outside"):
        psnr(image + 255.0, image)
    with pytest.raises(ValueError, match="dtype"):
        psnr(np.zeros((4, 4, 3), dtype=np.uint8), image)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(image[:2], image)
    with pytest.raises(ValueError, match="mask shape"):
        psnr(image, image, np.ones((4, 4, 3), dtype=bool))
    with pytest.raises(ValueError, match="no pixel"):
        psnr(image, image, np.zeros((4, 4), dtype=bool))
