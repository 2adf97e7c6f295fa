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


def test_render_paths_use_the_run_poses(tiny_scene, tmp_path):
    """`with_run_poses`: a run with moved cameras gives its final poses; a run on the scene's cameras the scene."""
    from tests.conftest import tiny_config

    from nsr.data.idr import load_idr_scene
    from nsr.engine.run import open_run, with_run_poses
    from nsr.engine.trainer import Trainer

    scene = load_idr_scene(tiny_scene)
    for noisy in (False, True):
        config = tiny_config(tiny_scene, steps=2)
        if noisy:
            config.cameras.trainable, config.cameras.pose_noise, config.cameras.lr = True, "3,0.03,0", 1e-2
        Trainer(config, scene, tmp_path / str(noisy)).train()
        run = open_run(tmp_path / str(noisy), device="cpu")
        poses = with_run_poses(run, scene).c2w
        if noisy:
            np.testing.assert_allclose(poses, run.cameras.poses(), atol=1e-6)
            assert not np.allclose(poses, scene.c2w, atol=1e-3)
        else:
            np.testing.assert_array_equal(poses, scene.c2w)
