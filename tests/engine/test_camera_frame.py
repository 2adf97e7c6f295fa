"""Held-out views of a run with moved cameras are rendered in the model's frame (nsr eval)."""

import numpy as np

from nsr.cameras.refine import axis_angle_matrix
from nsr.engine.cameras import evaluate_cameras, poses_in_model_frame
from nsr.metrics.poses import Similarity
from nsr.scenes import default_cameras


def test_held_out_views_get_the_ground_truth_pose_in_the_model_frame():
    """The model's frame is the ground truth's seen through a known similarity (the gauge the trained
    cameras drifted to): training views keep their trained poses, held-out views get the ground truth
    mapped by that similarity's inverse, exactly."""
    _, gt = default_cameras(12, 32)
    axis = np.array([0.2, 1.0, -0.4])
    model_to_gt = Similarity(
        1.3, axis_angle_matrix(axis / np.linalg.norm(axis), 0.4), np.array([0.1, -0.2, 0.3])
    )
    in_model = model_to_gt.inverse().apply_c2w(gt)
    train = [v for v in range(12) if v % 4]
    final = in_model.copy()
    final[[v for v in range(12) if not v % 4]] = np.eye(4)  # held-out views: never trained, anything
    evaluation = evaluate_cameras(final, final, gt, np.eye(4), train)
    poses = poses_in_model_frame(evaluation, final, gt)
    np.testing.assert_allclose(poses, in_model, atol=1e-9)
    # And the training views are the run's own poses even when they disagree with the ground truth.
    final[1, :3, 3] += 0.05
    poses = poses_in_model_frame(evaluate_cameras(final, final, gt, np.eye(4), train), final, gt)
    np.testing.assert_array_equal(poses[1], final[1])
    np.testing.assert_allclose(poses[0], in_model[0], atol=0.03)  # the alignment moved by ~0.05 / 9
