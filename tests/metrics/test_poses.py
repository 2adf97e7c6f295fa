import numpy as np
import pytest

from nsr.cameras.refine import axis_angle_matrix
from nsr.metrics.poses import (
    Similarity,
    look_at_point,
    object_alignment,
    pose_errors,
    robust_similarity,
    rotation_errors_deg,
    umeyama,
)
from nsr.scenes import default_cameras


def _known_similarity() -> Similarity:
    axis = np.array([1.0, -2.0, 0.5])
    return Similarity(1.7, axis_angle_matrix(axis / np.linalg.norm(axis), 0.9), np.array([0.3, -1.2, 2.0]))


def test_umeyama_recovers_a_known_similarity_exactly():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(10, 3))
    truth = _known_similarity()
    sim = umeyama(source, truth.apply(source))
    assert sim.scale == pytest.approx(truth.scale, rel=1e-12)
    np.testing.assert_allclose(sim.rotation, truth.rotation, atol=1e-12)
    np.testing.assert_allclose(sim.translation, truth.translation, atol=1e-12)
    np.testing.assert_allclose(
        sim.matrix() @ np.append(source[0], 1.0), np.append(truth.apply(source[:1])[0], 1)
    )


def test_robust_alignment_ignores_an_outlier():
    _, c2w = default_cameras(16, 32)
    truth = _known_similarity()
    # Estimated cameras = the ground truth seen in another frame (inverse similarity), one camera far off.
    inverse = Similarity(
        1.0 / truth.scale, truth.rotation.T, -truth.rotation.T @ truth.translation / truth.scale
    )
    estimated = inverse.apply_c2w(c2w)
    estimated[5, :3, 3] += np.array([1.5, -0.7, 0.9])
    sim, inliers = robust_similarity(estimated[:, :3, 3], c2w[:, :3, 3])
    assert inliers.sum() == 15 and not inliers[5]
    assert sim.scale == pytest.approx(truth.scale, rel=1e-10)
    np.testing.assert_allclose(sim.rotation, truth.rotation, atol=1e-10)
    np.testing.assert_allclose(sim.translation, truth.translation, atol=1e-10)
    # A plain least-squares fit is pulled off by the outlier.
    assert abs(umeyama(estimated[:, :3, 3], c2w[:, :3, 3]).scale - truth.scale) > 1e-3

    errors = pose_errors(estimated, c2w)
    keep = np.arange(16) != 5
    np.testing.assert_allclose(errors.rotation_deg[keep], 0.0, atol=1e-6)
    np.testing.assert_allclose(errors.centre[keep], 0.0, atol=1e-10)
    assert errors.centre[5] > 0.5 and errors.rotation_deg[5] < 1e-6
    summary = errors.summary(world_scale=2.5)
    assert summary["num_inliers"] == 15 and summary["num_cameras"] == 16
    assert summary["centre_world_mean"] == pytest.approx(2.5 * summary["centre_mean"])
    assert summary["centre_median"] < 1e-10 < summary["centre_mean"]


def test_rotation_error_is_the_geodesic_angle():
    axis = np.array([0.0, 0.6, 0.8])
    for degrees in (1e-4, 0.5, 3.0, 90.0, 179.0):
        r = axis_angle_matrix(axis, np.radians(degrees))
        assert rotation_errors_deg(r[None], np.eye(3)[None])[0] == pytest.approx(degrees, rel=1e-9)


def test_pose_errors_need_matching_counts():
    _, c2w = default_cameras(4, 32)
    with pytest.raises(ValueError, match="3 estimated cameras for 4"):
        pose_errors(c2w[:3], c2w)


def test_inverse_similarity_undoes_points_and_cameras():
    truth = _known_similarity()
    points = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_allclose(truth.inverse().apply(truth.apply(points)), points, atol=1e-12)
    np.testing.assert_allclose(truth.inverse().matrix(), np.linalg.inv(truth.matrix()), atol=1e-12)
    _, c2w = default_cameras(4, 32)
    np.testing.assert_allclose(truth.inverse().apply_c2w(truth.apply_c2w(c2w)), c2w, atol=1e-12)


def _turned(c2w: np.ndarray, angles: np.ndarray, axes: np.ndarray, about_origin: bool) -> np.ndarray:
    """Each camera turned by its angle about its axis, through the origin (it keeps seeing the object there)
    or through its own centre (it looks elsewhere)."""
    out = c2w.copy()
    for i, (angle, axis) in enumerate(zip(angles, axes)):
        turn = axis_angle_matrix(axis / np.linalg.norm(axis), angle)
        out[i, :3, :3] = turn @ c2w[i, :3, :3]
        if about_origin:
            out[i, :3, 3] = turn @ c2w[i, :3, 3]
    return out


def test_the_object_alignment_takes_its_translation_from_where_the_cameras_look():
    """Cameras left turned about the object (what training leaves) move the centres' fit by their average
    turn; the point they look at does not move, so the object's alignment puts the scene centre back where it
    was. Cameras turned about their own centres and moved a little (an untrained start) scatter where they look
    instead, and the object's alignment stays about as good as the centres' fit."""
    _, gt = default_cameras(16, 32)
    rng = np.random.default_rng(3)
    angles, axes = np.radians(0.5) * rng.standard_normal(16), rng.normal(size=(16, 3))
    truth = _known_similarity()  # the estimates live in another frame: gt = truth(est)
    origin = truth.inverse().apply(np.zeros((1, 3)))  # the scene centre in the estimates' frame
    for about_origin in (True, False):
        turned = _turned(gt, angles, axes, about_origin)
        if not about_origin:
            turned[:, :3, 3] += 0.014 * rng.standard_normal((16, 3))  # 0.5% of the distance
        est = truth.inverse().apply_c2w(turned)
        centres = pose_errors(est, gt).alignment
        frame = object_alignment(centres, est, gt)
        assert frame.scale == centres.scale and np.array_equal(frame.rotation, centres.rotation)
        off_centres, off_object = np.linalg.norm(centres.apply(origin)), np.linalg.norm(frame.apply(origin))
        if about_origin:
            assert off_centres > 0.005 and off_object < 1e-9
        else:
            assert off_object < 1.5 * off_centres + 1e-3
    point, offsets = look_at_point(gt)  # the default cameras look at the origin
    np.testing.assert_allclose(point, 0.0, atol=1e-9)
    np.testing.assert_allclose(offsets, 0.0, atol=1e-9)
