import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nsr.cameras import compose_projection, decompose_projection, pixel_grid, pixel_rays, scale_intrinsics


def _camera(seed: int):
    rng = np.random.default_rng(seed)
    k = np.array([[rng.uniform(300, 900), rng.uniform(-2, 2), rng.uniform(100, 400)], [0, 0, 0], [0, 0, 1.0]])
    k[1, 1], k[1, 2] = rng.uniform(300, 900), rng.uniform(100, 300)
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    c2w[:3, 3] = rng.normal(size=3) * 3
    return k, c2w


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("scale", [1.0, -2.5, 1e-3])
def test_decomposition_round_trip(seed, scale):
    k, c2w = _camera(seed)
    p = compose_projection(k, c2w) * scale
    k2, c2w2 = decompose_projection(p)
    np.testing.assert_allclose(k2, k, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(c2w2, c2w, atol=1e-9)
    assert np.linalg.det(c2w2[:3, :3]) == pytest.approx(1.0)


def test_decomposition_rejects_bad_matrices():
    with pytest.raises(ValueError, match="singular"):
        decompose_projection(np.zeros((3, 4)))
    p = np.eye(4)
    p[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        decompose_projection(p)


def test_rays_reproject_to_their_pixels():
    k, c2w = _camera(3)
    uv = pixel_grid(4, 5)
    origins, dirs = pixel_rays(torch.tensor(k, dtype=torch.float64), torch.tensor(c2w), uv.double())
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(20, dtype=torch.float64))
    points = (origins + 2.0 * dirs).numpy()
    p = compose_projection(k, c2w)
    proj = np.c_[points, np.ones(20)] @ p[:3].T
    np.testing.assert_allclose(proj[:, :2] / proj[:, 2:], uv.numpy(), atol=1e-6)
    assert uv[1].tolist() == [1.0, 0.0]  # (x = column, y = row), row-major


def test_scale_intrinsics_maps_pixel_centres():
    k = np.array([[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])
    half = scale_intrinsics(k, 0.5)
    # The image centre stays the image centre: (31.5 + 0.5) * 0.5 - 0.5 = 15.5.
    assert half[0, 2] == pytest.approx(15.5)
    assert half[1, 2] == pytest.approx(11.5)
    assert half[0, 0] == pytest.approx(50.0)
