"""SSIM against skimage; LPIPS network layout, loader and the no-weights path."""

import numpy as np
import pytest
import torch

from nsr.metrics.image import ssim, ssim_map
from nsr.metrics.lpips import (
    CHANNELS,
    LINEAR_WEIGHTS,
    LPIPS,
    LPIPSWeightsError,
    alexnet_features,
    load_lpips,
    lpips_distance,
    lpips_status,
)


def _pair(seed=0, shape=(48, 40, 3)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    base = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], -1) * 0.4 + 0.5
    noisy = np.clip(base + 0.08 * rng.standard_normal(shape), 0, 1)
    return base, noisy


def test_ssim_matches_skimage():
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    for seed in range(3):
        a, b = _pair(seed)
        expected = structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert ssim(a, b) == pytest.approx(expected, abs=1e-10)
    assert ssim(a, a) == pytest.approx(1.0)


def test_ssim_map_is_the_gaussian_window_formula():
    """The map (which the masked SSIM averages) against the formula of Wang et al. written out with
    scipy: Gaussian sigma 1.5 cut at 3.5 sigma, reflect padding, population covariance, data range 1."""
    from scipy.ndimage import gaussian_filter

    a, b = _pair(2)

    def blur(v):
        return gaussian_filter(v, sigma=1.5, truncate=3.5, mode="reflect")

    maps = []
    for c in range(3):
        x, y = a[..., c], b[..., c]
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        c1, c2 = 0.01**2, 0.03**2
        maps.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    np.testing.assert_allclose(ssim_map(a, b), np.mean(maps, axis=0), atol=1e-10)


def test_masked_ssim_is_the_mean_of_the_map_inside():
    a, b = _pair(1)
    mask = np.zeros(a.shape[:2], bool)
    mask[10:30, 5:25] = True
    assert ssim(a, b, mask) == pytest.approx(ssim_map(a, b)[mask].mean())
    with pytest.raises(ValueError, match="no pixel"):
        ssim(a, b, np.zeros_like(mask))


def test_lpips_without_weights_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model, status = load_lpips()
    assert model is None and not status.available
    assert "\n" not in status.message and "alexnet-owt-7be5be79.pth" in status.message
    assert str(tmp_path) in status.message


def _fake_backbone() -> dict[str, torch.Tensor]:
    """A state dict with torchvision's AlexNet layout (random values: for the loader only)."""
    g = torch.Generator().manual_seed(0)
    state = {
        f"features.{k}": torch.randn(v.shape, generator=g) * 0.05
        for k, v in alexnet_features().state_dict().items()
    }
    state["classifier.1.weight"] = torch.zeros(8, 4)  # other keys are ignored
    return state


def test_lpips_network_loads_reference_layouts(tmp_path):
    linear = torch.load(LINEAR_WEIGHTS, map_location="cpu", weights_only=True)  # the vendored lpips v0.1 file
    assert [linear[f"lin{i}.model.1.weight"].shape[1] for i in range(5)] == list(CHANNELS)
    net = LPIPS()
    net.load_weights(_fake_backbone(), linear)
    assert torch.equal(net.lins[2].weight, linear["lin2.model.1.weight"])
    a, b = _pair(0, (64, 64, 3))
    assert lpips_distance(net, a, a) == pytest.approx(0.0, abs=1e-7)
    assert lpips_distance(net, a, b) > 0
    bad = _fake_backbone()
    bad["features.3.weight"] = torch.zeros(10, 64, 5, 5)
    with pytest.raises(LPIPSWeightsError, match="wrong layout"):
        LPIPS().load_weights(bad, linear)
    # A backbone file in the cache is found and loaded (the numbers of this fake one are never reported).
    path = tmp_path / "alexnet.pth"
    torch.save(_fake_backbone(), path)
    model, status = load_lpips(path)
    assert status.available and model is not None


def test_lpips_matches_the_reference_package_when_installed():
    lpips = pytest.importorskip("lpips")
    if not lpips_status().available:
        pytest.skip("AlexNet weights not in the torch hub cache")
    ours, _ = load_lpips()
    ref = lpips.LPIPS(net="alex", version="0.1", verbose=False)
    a, b = _pair(0, (64, 64, 3))
    ta, tb = (torch.from_numpy(x).float().permute(2, 0, 1)[None] for x in (a, b))
    assert lpips_distance(ours, a, b) == pytest.approx(float(ref(ta, tb, normalize=True)), rel=1e-4)
