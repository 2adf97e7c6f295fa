"""`benchmarks/camera_trajectory.py`: a trained-camera run's errors at each kept checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import load_benchmark

SMALL = [
    "--holdout", "4", "--rays-per-batch", "64", "--device", "cpu", "--val-every", "0", "--no-tensorboard",
    "--model.sdf.hidden-dim", "48", "--model.sdf.feature-dim", "8", "--model.appearance.hidden-dim", "32",
    "--model.tracer.num-samples", "16", "--model.tracer.mask-samples", "8",
]  # fmt: skip


def nsr(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "nsr.cli.main", *map(str, args)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr


def test_each_checkpoint_is_measured_as_eval_cameras_does(tiny_scene, tmp_path):
    tool = load_benchmark("camera_trajectory")
    run = tmp_path / "run"
    nsr("train", "--data", tiny_scene, "--out", run, "--preset", "demo-cams", "--pose-noise", "3,0.03,1",
        "--steps", "4", "--checkpoint-every", "2", *SMALL)  # fmt: skip
    rows = tool.trajectory(run)
    assert [r["step"] for r in rows] == [2, 4]
    nsr("eval-cameras", run, "--checkpoint", "2", "--no-mesh", "--device", "cpu")
    report = json.loads((run / "eval_cameras.json").read_text())["after"]
    assert rows[0]["rotation_deg_mean"] == pytest.approx(report["rotation_deg_mean"], rel=1e-6)
    assert rows[0]["rotation_deg_max"] == pytest.approx(report["rotation_deg_max"], rel=1e-6)
    assert rows[0]["centre_pct_mean"] == pytest.approx(100 * report["centre_rel_mean"], rel=1e-6)
    assert rows[0]["rotation_deg_mean"] > 1.0  # the cameras start 3 degrees off and barely moved in 2 steps
