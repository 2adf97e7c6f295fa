"""The Python API on the tiny generated scene: load, train, mesh, evaluate, report, re-open."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import nsr
from nsr.engine.run import RunError

SMALL = {
    "rays_per_batch": 64,
    "model.sdf.hidden_dim": 48,
    "model.sdf.feature_dim": 8,
    "model.appearance.hidden_dim": 32,
    "model.tracer.num_samples": 16,
    "model.tracer.mask_samples": 8,
    "val_every": 0,
    "tensorboard": False,
}


def test_import_has_no_side_effects():
    code = "import sys, nsr; assert 'torch' not in sys.modules and 'nsr.api' not in sys.modules; print(nsr.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert {"load_scene", "train", "open_run"} <= set(dir(nsr))
    with pytest.raises(AttributeError):
        nsr.no_such_thing  # noqa: B018


def test_load_train_mesh_evaluate(tiny_scene, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))  # no LPIPS weights
    scene = nsr.load_scene(tiny_scene)
    assert (scene.num_views, scene.width, scene.height) == (8, 32, 32) and "8 views" in repr(scene)
    run = nsr.train(
        scene, preset="demo", steps=4, holdout=4, out=tmp_path / "run", device="cpu", overrides=SMALL,
        progress=False,
    )  # fmt: skip
    assert run.step == 4 and run.config.rays_per_batch == 64 and run.config.data.holdout_every == 4
    assert json.loads((tmp_path / "run" / "machine.json").read_text())[0]["device"] == "cpu"

    mesh = run.mesh(resolution=32, save=tmp_path / "mesh.ply")
    scale = json.loads((tmp_path / "run" / "scene.json").read_text())["scale_mat"][0][0]
    assert len(mesh.faces) > 0 and (tmp_path / "mesh.ply").is_file()
    assert 0.3 * scale < np.ptp(mesh.vertices, axis=0).max() < 1.3 * 2 * scale  # world units

    result = run.evaluate()
    assert result["views"] == [0, 4] and np.isfinite(result["psnr_mask_aa"])
    assert (tmp_path / "run" / "eval" / "step_0000004" / "summary.json").is_file()
    geometry = run.evaluate(gt_mesh=tiny_scene / "gt_mesh.ply", resolution=32, num_samples=2000)
    assert np.isfinite(geometry["chamfer_rel"]) and "psnr" not in geometry

    page = run.report()
    assert page == tmp_path / "run" / "report.html" and "Chamfer" in page.read_text()

    again = nsr.open_run(tmp_path / "run", device="cpu")
    assert again.step == 4
    (tmp_path / "run" / "config.yaml").rename(tmp_path / "config.yaml.bak")  # lost: the checkpoint's copy
    assert nsr.open_run(tmp_path / "run", device="cpu").config == run.config
    (tmp_path / "config.yaml.bak").rename(tmp_path / "run" / "config.yaml")
    with pytest.raises(RunError, match="already holds a run"):
        nsr.train(scene, steps=4, out=tmp_path / "run", device="cpu", overrides=SMALL, progress=False)
    resumed = nsr.train(
        scene, steps=6, holdout=4, out=tmp_path / "run", device="cpu", overrides=SMALL, resume=True,
        progress=False,
    )  # fmt: skip
    assert resumed.step == 6
    with pytest.raises(RunError, match="not a run folder"):
        nsr.open_run(tmp_path)
