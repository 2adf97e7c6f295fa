"""Trainable cameras in the trainer: initial poses, run-folder camera files, gradients, checkpoints."""

import numpy as np
import pytest
import torch

from conftest import interrupted, tiny_config
from nsr.cameras.refine import PoseNoise, perturb_poses
from nsr.data import DataError
from nsr.data.idr import load_cameras, load_idr_scene
from nsr.engine import Trainer
from nsr.engine.cameras import GT_CAMERAS, INIT_CAMERAS, write_cameras
from nsr.engine.run import evaluate_run_cameras, open_run


def cams_config(scene, steps=4, noise="3,0.03,2"):
    config = tiny_config(scene, steps=steps)
    config.cameras.trainable = True
    config.cameras.pose_noise = noise
    config.cameras.lr = 1e-2
    config.val_every = 0
    config.tensorboard = False
    return config


def test_trainable_cameras_get_gradients_and_move(tiny_scene, tmp_path):
    scene = load_idr_scene(tiny_scene)
    trainer = Trainer(cams_config(tiny_scene), scene, tmp_path / "run")
    np.testing.assert_allclose(trainer.scene.c2w, perturb_poses(scene.c2w, PoseNoise(3, 0.03, 2)))
    np.testing.assert_array_equal(trainer.gt_scene.c2w, scene.c2w)
    trainer.train_step()
    grad = trainer.cameras.correction.grad
    train, test = trainer.train_views, trainer.test_views
    assert grad[train].abs().sum(1).gt(0).all(), "every training camera gets a gradient"
    assert grad[test].abs().sum() == 0, "held-out cameras get none"
    assert not np.allclose(trainer.cameras.poses()[train], trainer.scene.c2w[train])


def test_run_folder_keeps_gt_and_initial_cameras_and_resumes_exactly(tiny_scene, tmp_path):
    scene = load_idr_scene(tiny_scene)
    straight = Trainer(cams_config(tiny_scene, steps=6), scene, tmp_path / "a")
    straight.train()
    first = interrupted(Trainer(cams_config(tiny_scene, steps=6), scene, tmp_path / "b"), at=4)
    second = Trainer(cams_config(tiny_scene, steps=6), scene, tmp_path / "b")
    assert second.resume() and second.step == 4
    assert torch.equal(second.cameras.correction, first.cameras.correction)
    second.train()
    assert torch.equal(straight.cameras.correction, second.cameras.correction)
    for a, b in zip(straight.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)

    run = tmp_path / "b"
    _, gt_c2w, gt_scale = load_cameras(run / GT_CAMERAS, scene.num_views)
    _, init_c2w, _ = load_cameras(run / INIT_CAMERAS, scene.num_views)
    np.testing.assert_allclose(gt_c2w, scene.c2w, atol=1e-9)
    np.testing.assert_allclose(gt_scale, scene.scale_mat)
    np.testing.assert_allclose(init_c2w, second.scene.c2w, atol=1e-9)

    reopened = open_run(run, device="cpu")
    np.testing.assert_array_equal(reopened.cameras.poses(), second.cameras.poses())
    evaluation = evaluate_run_cameras(reopened)
    before = evaluation.before.summary()
    assert evaluation.views == second.train_views
    # 3 degrees of noise, give or take what aligning only 6 noisy centres adds or absorbs.
    assert 1.5 < before["rotation_deg_mean"] < 4.5


def test_initial_poses_from_a_camera_file(tiny_scene, tmp_path):
    scene = load_idr_scene(tiny_scene)
    noisy = perturb_poses(scene.c2w, PoseNoise(2, 0.02, 4))
    other_scale = np.diag([3.0, 3.0, 3.0, 1.0])
    other_scale[:3, 3] = [1.0, 2.0, 3.0]
    write_cameras(tmp_path / "linear_init.npz", scene.intrinsics, noisy, other_scale)
    config = tiny_config(tiny_scene, steps=1)
    config.cameras.init_file = str(tmp_path / "linear_init.npz")
    trainer = Trainer(config, scene, tmp_path / "run")
    assert trainer.cameras is None  # noisy but fixed cameras (the ablation)
    np.testing.assert_allclose(trainer.scene.c2w, noisy, atol=1e-9)
    np.testing.assert_allclose(trainer.scene.scale_mat, other_scale)
    np.testing.assert_array_equal(trainer.scene.intrinsics, scene.intrinsics)
    trainer.train()
    assert (tmp_path / "run" / GT_CAMERAS).is_file()
    evaluation = evaluate_run_cameras(open_run(tmp_path / "run", device="cpu"))
    assert evaluation.before.summary() == evaluation.after.summary()

    config.cameras.init_file = "missing.npz"
    with pytest.raises(DataError, match=r"missing\.npz: camera file not found"):
        Trainer(config, scene, tmp_path / "run2")


def test_frozen_warmup_keeps_cameras_and_adam_untouched(tiny_scene, tmp_path):
    config = cams_config(tiny_scene)
    config.cameras.warmup, config.cameras.warmup_until = "frozen", 2 / config.steps
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.train_step()
    assert trainer.cameras.correction.grad is None and trainer.cameras.correction.abs().sum() == 0
    assert not trainer.camera_optimizer.state  # no moments fed while frozen
    trainer.train_step()
    trainer.train_step()
    assert trainer.cameras.correction.abs().sum() > 0
