"""Image metrics on [0, 1] colours: MSE, PSNR and SSIM, optionally over a mask.

Inputs are float arrays or tensors in [0, 1] (numpy or torch, any device), shaped (..., C), e.g.
(H, W, 3); a mask is a boolean array shaped like the inputs without the channel axis, e.g. (H, W).
Values outside [0, 1] raise instead of silently giving a PSNR on the wrong range: divide 8-bit
images by 255 and clip network outputs first. Computation is in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

_RANGE_TOLERANCE = 1e-4
"""Slack on the [0, 1] range check, for round-off in colour conversions."""


def mse(pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean squared error over all pixels and channels, or over the masked pixels only.

    Args:
        pred, target: (..., C) float colours in [0, 1], e.g. (H, W, 3).
        mask: optional (...) bool, e.g. (H, W); True pixels count (all their channels).
    """
    pred_array = _colours(pred, "pred")
    target_array = _colours(target, "target")
    if pred_array.shape != target_array.shape:
        raise ValueError(f"pred and target shapes differ: {pred_array.shape} vs {target_array.shape}")
    squared = (pred_array - target_array) ** 2
    if mask is None:
        return float(np.mean(squared))
    mask_array = _as_numpy(mask)
    if mask_array.shape != squared.shape[:-1]:
        raise ValueError(
            f"mask shape {mask_array.shape} does not match the images {squared.shape} "
            "(expected the image shape without the channel axis)"
        )
    if mask_array.dtype != np.bool_:
        raise ValueError(f"mask must be boolean, got dtype {mask_array.dtype}")
    if not mask_array.any():
        raise ValueError("mask selects no pixel: the masked MSE is undefined")
    return float(np.mean(squared[mask_array]))


def psnr(pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Peak signal-to-noise ratio in dB for [0, 1] colours: -10 log10(MSE); inf when identical.

    Args:
        pred, target: (..., C) float colours in [0, 1], e.g. (H, W, 3).
        mask: optional (...) bool, e.g. (H, W); the MSE is over the masked pixels only.
    """
    error = mse(pred, target, mask)
    if error == 0.0:
        return math.inf
    return -10.0 * math.log10(error)


def _as_numpy(value: ArrayLike) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.double() if value.is_floating_point() else value).numpy()
    return np.asarray(value)


def _colours(value: ArrayLike, name: str) -> np.ndarray:
    """A float64 copy of a [0, 1] colour array, or a ValueError naming the problem."""
    array = _as_numpy(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be float colours in [0, 1], got dtype {array.dtype} (divide by 255?)")
    array = array.astype(np.float64)
    if array.ndim < 2 or array.size == 0:
        raise ValueError(f"{name} must be shaped (..., C), e.g. (H, W, 3), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    low, high = float(array.min()), float(array.max())
    if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(
            f"{name} values span [{low:.4g}, {high:.4g}], outside [0, 1]: "
            "divide 8-bit images by 255 and clip predictions to [0, 1]"
        )
    return array


SSIM_SIGMA = 1.5
"""Standard deviation (pixels) of the SSIM Gaussian window (Wang et al. 2004)."""
SSIM_BORDER = 5
"""Half the window (skimage truncates the Gaussian at 3.5 sigma: an 11x11 window). The border of this
width is unreliable (the window reaches the reflect padding); the unmasked `ssim` leaves it out."""


def ssim_map(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Per-pixel SSIM of two (H, W, C) [0, 1] images, averaged over channels -> (H, W) float64.

    `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1, full=True)`: Gaussian window sigma 1.5
    (11x11), reflect padding, population covariances, C1 = (0.01)^2, C2 = (0.03)^2.
    """
    from skimage.metrics import structural_similarity

    x = _colours(pred, "pred")
    y = _colours(target, "target")
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"SSIM needs two (H, W, C) images of one shape, got {x.shape} and {y.shape}")
    if min(x.shape[:2]) < 2 * SSIM_BORDER + 1:
        raise ValueError(f"SSIM needs images of at least {2 * SSIM_BORDER + 1} pixels, got {x.shape[:2]}")
    _, full = structural_similarity(
        x,
        y,
        gaussian_weights=True,
        sigma=SSIM_SIGMA,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
        full=True,
    )
    return full.mean(axis=-1)


def ssim(pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean SSIM of two (H, W, C) [0, 1] images (conventions in `ssim_map`).

    Without a mask: skimage's `structural_similarity` (the mean over the image minus its 5-pixel border).
    With a (H, W) bool mask: the mean of the SSIM map over the masked pixels (windows still see their
    neighbourhood, background included).
    """
    values = ssim_map(pred, target)
    if mask is None:
        pad = SSIM_BORDER
        return float(values[pad:-pad, pad:-pad].mean())
    mask_array = _as_numpy(mask)
    if mask_array.shape != values.shape or mask_array.dtype != np.bool_:
        raise ValueError(
            f"mask must be bool shaped {values.shape}, got {mask_array.dtype} {mask_array.shape}"
        )
    if not mask_array.any():
        raise ValueError("mask selects no pixel: the masked SSIM is undefined")
    return float(values[mask_array].mean())
