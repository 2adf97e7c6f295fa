"""The camera guard on the CPU demo scene: one camera far off among noisy ones (slow: two demo trainings side
by side, 15-20 min on 2 cores; marked `hours`, so CI leaves it out: `python -m pytest -m hours`)."""

import json
import os
import subprocess
import sys

import pytest

from nsr.cameras.refine import PoseNoise, perturb_poses
from nsr.data.idr import load_idr_scene
from nsr.engine.camera_guard import CAMERA_HEALTH
from nsr.engine.cameras import write_cameras

BAD_VIEW = 1
"""The second-lowest camera of the demo's spiral (16 degrees below the object's equator; view 0 is held out):
the object's underside is seen by few others."""


def _nsr(*args):
    return [sys.executable, "-m", "nsr.cli.main", *map(str, args)]


@pytest.mark.slow
@pytest.mark.hours
def test_a_camera_fifteen_degrees_off_is_brought_back(tmp_path):
    """demo-cams from 3 deg / 3% noise, view 1 turned 15 degrees instead: without the guard it ends tens of
    degrees off (and drags the others); with it (the preset's default) every camera ends within 1.5 degrees."""
    from nsr.scenes import generate_default_scene

    scene_dir = generate_default_scene(tmp_path / "scene")
    scene = load_idr_scene(scene_dir)
    start = perturb_poses(scene.c2w, PoseNoise(3, 0.03, 0))
    start[BAD_VIEW] = perturb_poses(scene.c2w[[BAD_VIEW]], PoseNoise(15, 0.03, 1))[0]
    write_cameras(tmp_path / "start.npz", scene.intrinsics, start, scene.scale_mat)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--data", scene_dir, "--preset", "demo-cams", "--camera-init", tmp_path / "start.npz",
              "--val-every", "0", "--no-tensorboard"]  # fmt: skip
    runs = {"guard": [], "off": ["--camera-guard.every", "0"]}
    procs = {
        name: subprocess.Popen(_nsr("train", "--out", tmp_path / name, *common, *extra), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name, extra in runs.items()
    }  # fmt: skip
    logs = {}
    for name, proc in procs.items():
        _, logs[name] = proc.communicate()
        assert proc.returncode == 0, f"{name}: {logs[name]}"
    after = {}
    for name in runs:
        subprocess.run(_nsr("eval-cameras", tmp_path / name, "--no-mesh"), check=True, env=env)
        report = json.loads((tmp_path / name / "eval_cameras.json").read_text())
        views = report["views"]
        after[name] = (report["after"], report["per_view"]["rotation_deg_after"][views.index(BAD_VIEW)])
        print(
            f"{name}: rotation mean {report['after']['rotation_deg_mean']:.3f} max "
            f"{report['after']['rotation_deg_max']:.3f} deg (from {report['before']['rotation_deg_max']:.2f}); "
            f"view {BAD_VIEW} {after[name][1]:.2f} deg"
        )
    health = json.loads((tmp_path / "guard" / CAMERA_HEALTH).read_text())
    assert health["recovered"] == [BAD_VIEW]
    assert f"camera guard: view {BAD_VIEW} (001.png)" in logs["guard"] and "re-localised" in logs["guard"]
    assert not (tmp_path / "off" / CAMERA_HEALTH).exists()
    assert after["off"][1] > 10.0
    assert after["guard"][1] < 1.5 and after["guard"][0]["rotation_deg_max"] < 1.5
    assert after["guard"][0]["rotation_deg_mean"] < 0.5
