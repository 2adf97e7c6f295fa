"""DTU protocol on small synthetic files in the official formats, with answers known by construction."""

import numpy as np
import pytest
import scipy.io
import trimesh
from scipy.spatial import cKDTree

from nsr.metrics.dtu import (
    DTUDataError,
    evaluate_dtu_mesh,
    load_dtu_ground_truth,
    sample_mesh_lattice,
    save_error_clouds,
    thin_points,
)


def _square(z: float, x0=0.0, x1=10.0, y0=0.0, y1=10.0) -> trimesh.Trimesh:
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)
    return trimesh.Trimesh(v, np.array([[0, 1, 2], [0, 2, 3]]), process=False)


def _write_dtu(root, scan, gt_points, obs_mask, bbox, res, plane):
    (root / "Points" / "stl").mkdir(parents=True)
    (root / "ObsMask").mkdir()
    trimesh.PointCloud(gt_points).export(root / "Points" / "stl" / f"stl{scan:03d}_total.ply")
    scipy.io.savemat(
        root / "ObsMask" / f"ObsMask{scan}_10.mat", {"ObsMask": obs_mask, "BB": bbox, "Res": res}
    )
    scipy.io.savemat(root / "ObsMask" / f"Plane{scan}.mat", {"P": np.asarray(plane, float).reshape(4, 1)})


def test_lattice_sampling_and_thinning_density():
    square = _square(0.0)
    points = sample_mesh_lattice(square.vertices, square.faces, 0.2)
    assert np.all(np.abs(points[:, 2]) < 1e-12)
    # every part of the square is covered at ~the lattice spacing
    probe = np.random.default_rng(1).random((2000, 3)) * [10, 10, 0]
    assert cKDTree(points).query(probe)[0].max() < 0.3
    thinned = thin_points(points, 0.2, seed=0)
    pair_dist = cKDTree(thinned).query(thinned, k=2)[0][:, 1]
    assert pair_dist.min() >= 0.2 - 1e-9
    assert cKDTree(thinned).query(points)[0].max() <= 0.2 + 1e-9
    assert np.array_equal(thinned, thin_points(points, 0.2, seed=0))  # seeded


def test_dtu_protocol_known_answers(tmp_path):
    scan = 7
    # GT: a dense grid on z = 0 over [0, 10]^2 (spacing 0.05 -> lateral error < 0.036), plus a block of
    # points below the ground plane z > -1 (must be ignored by completeness).
    g = np.arange(0, 10.0001, 0.05)
    xx, yy = np.meshgrid(g, g)
    top = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], 1)
    below = np.stack([xx.ravel() + 12, yy.ravel(), np.full(xx.size, -5.0)], 1)
    gt_points = np.concatenate([top, below])
    bbox = np.array([[0.0, 0.0, -10.0], [40.0, 10.0, 10.0]])
    res = 1.0
    obs = np.ones((41, 11, 21), dtype=bool)
    obs[25:, :, :] = False  # x >= 24.5 not observed
    plane = [0, 0, 1, 1]  # z + 1 > 0
    _write_dtu(tmp_path, scan, gt_points, obs, bbox, res, plane)
    gt = load_dtu_ground_truth(tmp_path, scan)

    # Reconstruction: the square 0.5 mm above the GT, plus a far piece (30 mm up: outlier, capped), plus a
    # piece in the unobserved region (ignored by accuracy), plus one far outside the padded bbox.
    mesh = trimesh.util.concatenate(
        [_square(0.5), _square(9.5, 4, 6, 4, 6), _square(0.5, 30, 32, 0, 2), _square(0.0, 200, 202, 0, 2)]
    )
    result = evaluate_dtu_mesh(mesh, gt, density=0.2, seed=0)
    piece = evaluate_dtu_mesh(_square(9.5, 4, 6, 4, 6), gt)
    assert piece.accuracy == pytest.approx(9.5, abs=0.003)  # under the 20 mm cap: counted
    # Without the in-range outlier piece the accuracy is exactly the offset.
    clean = evaluate_dtu_mesh(trimesh.util.concatenate([_square(0.5), _square(0.0, 200, 202, 0, 2)]), gt)
    assert clean.accuracy == pytest.approx(0.5, abs=0.003)
    # GT (spacing 0.05) to thinned points (spacing ~0.2): 0.5 plus a lateral offset of at most ~0.2.
    assert 0.5 <= clean.completeness < np.hypot(0.5, 0.2)
    # The below-plane block (5 to 13 mm from the reconstruction) would count if it were not filtered.
    assert clean.completeness < 0.6
    assert clean.overall == pytest.approx(0.5 * (clean.accuracy + clean.completeness))
    assert clean.num_gt_above_plane == len(top)
    # All pieces: the unobserved (x >= 24.5) and out-of-bbox pieces do not count for accuracy.
    observed = np.any(result.data_colors != [0, 0, 255], axis=1)  # not blue = evaluated
    assert observed.sum() == result.num_observed
    assert np.all(result.data_points[observed, 0] < 24.5)
    n_piece = int(np.sum(result.data_points[observed, 2] > 5))
    n_main = result.num_observed - n_piece
    assert n_piece > 0
    expected = (0.5 * n_main + 9.5 * n_piece) / (n_main + n_piece)
    assert result.accuracy == pytest.approx(expected, abs=0.003)
    far = evaluate_dtu_mesh(trimesh.util.concatenate([_square(0.5), _square(25.0, 4, 6, 4, 6)]), gt)
    assert far.accuracy == pytest.approx(clean.accuracy, abs=0.003)  # 25 mm > 20 mm cap: discarded

    d2s, s2d = save_error_clouds(clean, tmp_path / "vis", scan)
    cloud = trimesh.load(d2s)
    assert len(cloud.vertices) == clean.num_points
    colours = np.asarray(cloud.colors)[:, :3]
    # the 200 mm piece is outside the bbox: blue
    outside = cloud.vertices[:, 0] > 100
    assert outside.any() and np.all(colours[outside] == [0, 0, 255])
    assert trimesh.load(s2d).vertices.shape[0] == len(gt_points)


def test_missing_dtu_file_is_named(tmp_path):
    with pytest.raises(DTUDataError, match=r"stl024_total\.ply"):
        load_dtu_ground_truth(tmp_path, 24)
