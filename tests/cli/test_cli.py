"""The `nsr` command line, run as a user would: subprocesses, exit codes, files left behind."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nsr.config import get_preset
from nsr.engine.checkpoint import load_checkpoint

SMALL = [
    "--preset", "demo", "--holdout", "4", "--rays-per-batch", "64", "--device", "cpu",
    "--model.sdf.hidden-dim", "48", "--model.sdf.feature-dim", "8", "--model.appearance.hidden-dim", "32",
    "--model.tracer.num-samples", "16", "--model.tracer.mask-samples", "8", "--val-every", "0",
]  # fmt: skip


def nsr(*args, check=True, threads=1, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "nsr.cli.main", *map(str, args)], capture_output=True, text=True, env=env, **kw
    )
    if check and result.returncode != 0:
        raise AssertionError(f"nsr {args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def test_help_lists_commands():
    out = nsr("--help").stdout
    assert "demo" in out and "train" in out and "mesh" in out
    assert "--model.sdf.hidden-dim" in nsr("train", "--help").stdout


def test_bad_input_is_one_clear_line(tmp_path):
    (tmp_path / "scene" / "image").mkdir(parents=True)
    result = nsr("train", "--data", tmp_path / "scene", "--out", tmp_path / "run", *SMALL, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("nsr: error:") and "image" in lines[0] and "empty" in lines[0]
    )


def test_train_then_mesh(tiny_scene, tmp_path):
    run = tmp_path / "run"
    nsr("train", "--data", tiny_scene, "--out", run, *SMALL, "--steps", "3", "--checkpoint-every", "3")
    assert (run / "checkpoints" / "latest.pt").is_file()
    # A second launch into the same folder without --resume refuses rather than overwriting.
    again = nsr("train", "--data", tiny_scene, "--out", run, *SMALL, "--steps", "3", check=False)
    assert again.returncode == 1 and "--resume" in again.stderr
    nsr("mesh", run, "--resolution", "48", "--out", tmp_path / "mesh.ply", "--device", "cpu")
    import trimesh

    mesh = trimesh.load(tmp_path / "mesh.ply")
    scene_scale = json.loads((run / "scene.json").read_text())["scale_mat"][0][0]
    # World units: the initial sphere of radius 0.6 (normalised) scaled by the scene's scale_mat.
    assert mesh.vertices.std() > 0.2 * scene_scale
    # Filling hidden pockets changes little on a field near its initial sphere (only creases that none of
    # the 6 training cameras sees and the surface encloses); a missing scene is one clear line.
    nsr("mesh", run, "--resolution", "48", "--out", tmp_path / "filled.ply", "--device", "cpu",
        "--fill-unseen")  # fmt: skip
    assert trimesh.load(tmp_path / "filled.ply").area == pytest.approx(mesh.area, rel=0.01)
    moved = nsr("mesh", run, "--fill-unseen", "--data", tmp_path / "nowhere", "--device", "cpu", check=False)
    assert moved.returncode == 1 and "nowhere" in moved.stderr and "Traceback" not in moved.stderr


def test_killed_run_resumes_to_the_same_result(tiny_scene, tmp_path):
    """Kill a training process mid-run, resume it, compare with an uninterrupted run."""
    # Enough steps after the kill point that the poll below (every 50 ms) cannot miss the window on a busy machine.
    steps = ["--steps", "40", "--checkpoint-every", "2"]
    nsr("train", "--data", tiny_scene, "--out", tmp_path / "straight", *SMALL, *steps)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "nsr.cli.main",
        "train",
        "--data",
        str(tiny_scene),
        "--out",
        str(tmp_path / "killed"),
    ]
    proc = subprocess.Popen(
        [*cmd, *SMALL, *steps], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # The step file is written before latest.pt: once step 8's exists, latest.pt holds step 6 or later.
    target = tmp_path / "killed" / "checkpoints" / "step_0000008.pt"
    deadline = time.time() + 120
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = load_checkpoint(tmp_path / "killed" / "checkpoints" / "latest.pt")
    assert 6 <= latest["step"] < 40, "the process must be killed mid-run"

    nsr("train", "--out", tmp_path / "killed", "--resume")
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 40
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


@pytest.mark.slow
@pytest.mark.hours
def test_demo_meets_the_quality_bar(demo_run):
    """The issue's bar: on 2 CPU cores `nsr demo` finishes within 10 minutes with Chamfer <= 1.5% of the diagonal."""
    demo, seconds = demo_run  # run as a user runs it: all cores (shared with tests/cli/test_mesh_demo.py)
    metrics = json.loads((demo / "metrics.json").read_text())
    for name in ("scene/gt_mesh.ply", "scene/cameras.npz", "run/config.yaml", "mesh.ply"):
        assert (demo / name).is_file()
    assert metrics["chamfer_rel"] <= 0.015
    assert metrics["psnr"] > 25
    assert seconds < 600
    print(
        f"demo: {seconds:.0f} s, chamfer {100 * metrics['chamfer_rel']:.3f}% of the diagonal, psnr {metrics['psnr']:.2f}"
    )


def test_demo_smoke(tmp_path):
    nsr("demo", "--out", tmp_path / "demo", "--steps", "3", "--resolution", "32")
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert {"chamfer", "accuracy", "completeness", "fscore", "chamfer_rel", "psnr"} <= set(metrics)
    assert {"psnr_mask_aa", "psnr_interior", "resolution"} <= set(metrics)
    assert metrics["steps"] == 3
    # the evaluation is where `nsr eval` puts it, and the demo's report shows it
    assert (tmp_path / "demo" / "run" / "eval" / "step_0000003" / "geometry.json").is_file()
    page = (tmp_path / "demo" / "report.html").read_text()
    assert "No evaluation yet" not in page and "Chamfer" in page and "anti-aliased" in page
    # Running it again reuses the scene, the finished run and its measurements.
    result = nsr("demo", "--out", tmp_path / "demo", "--steps", "3", "--resolution", "32")
    assert "at step 3" in result.stdout and "resuming" in result.stdout
    assert "already measured at step 3" in result.stdout and "% of the GT bbox diagonal" in result.stdout
    assert json.loads((tmp_path / "demo" / "metrics.json").read_text()) == metrics


def test_demo_takes_a_time_limit(tmp_path):
    """`nsr demo --max-seconds S`: the run stops after S seconds of training or its steps, whichever comes
    first (its schedules follow the run's length), and an interrupted demo is resumed with the same limit."""
    from nsr.cli.demo import DemoArgs, demo_config, resume_command

    args = DemoArgs(out=tmp_path / "demo", max_seconds=90)
    config = demo_config(args, tmp_path / "scene")
    assert config.max_seconds == 90 and config.steps == get_preset("demo").steps
    assert config.data.path == tmp_path / "scene"
    assert resume_command(args) == f"nsr demo --out {tmp_path / 'demo'} --max-seconds 90"
    assert demo_config(DemoArgs(out=tmp_path), tmp_path).max_seconds == 0  # no limit by default
    result = nsr("demo", "--out", tmp_path / "x", "--max-seconds", "-1", check=False)
    assert result.returncode != 0 and "max-seconds" in result.stderr


def test_demo_measures_again_only_what_changed(tmp_path):
    """A second `nsr demo` reports the first one's metrics only for the same step and mesh resolution, with
    its mesh and report there; anything else (or an unreadable metrics.json) is measured again."""
    from nsr.cli.demo import DemoArgs, _finished_metrics

    out = tmp_path / "demo"
    out.mkdir()
    args = DemoArgs(out=out, resolution=64)
    metrics = {"steps": 10, "mesh_resolution": 64, "chamfer": 0.1}
    (out / "metrics.json").write_text(json.dumps(metrics))
    assert _finished_metrics(args, 10) is None  # no mesh.ply / report.html yet
    (out / "mesh.ply").write_text("ply")
    (out / "report.html").write_text("<html>")
    assert _finished_metrics(args, 10) == metrics
    assert _finished_metrics(args, 11) is None
    assert _finished_metrics(DemoArgs(out=out, resolution=128), 10) is None
    (out / "metrics.json").write_text("{not json")
    assert _finished_metrics(args, 10) is None
