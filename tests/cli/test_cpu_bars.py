"""The CPU bars of the renderer and budget issues, on the generated demo scene (slow: minutes each).

- NeuS on a CPU: `neus-demo` reaches Chamfer <= 1% of the GT diagonal within 10 minutes, train and mesh.
- Budgets: `nsr train --preset demo --max-seconds 60` and `--max-seconds 120` both end their schedule
  annealed (RUN/schedule.json) and the 120 s mesh is no worse than the 60 s one.
"""

import json
import time

import pytest
import trimesh
from test_cli import nsr

from nsr.metrics.geometry import mesh_metrics


def chamfer_rel(run, scene) -> float:
    nsr("mesh", run, "--resolution", "256", "--out", run / "mesh.ply", threads=0)
    mesh = trimesh.load(run / "mesh.ply", force="mesh")
    gt = trimesh.load(scene / "gt_mesh.ply", force="mesh")
    return mesh_metrics(mesh, gt)["chamfer_rel"]


@pytest.mark.slow
@pytest.mark.hours
def test_neus_demo_reaches_one_percent_within_ten_minutes(demo_run, tmp_path):
    scene = demo_run[0] / "scene"
    start = time.time()
    nsr(
        "train",
        "--data",
        scene,
        "--out",
        tmp_path / "neus",
        "--preset",
        "neus-demo",
        "--max-seconds",
        "420",
        threads=0,
    )
    chamfer = chamfer_rel(tmp_path / "neus", scene)
    seconds = time.time() - start
    print(f"neus-demo: {seconds:.0f} s (train + mesh), Chamfer {100 * chamfer:.3f}% of the diagonal")
    assert chamfer <= 0.01
    assert seconds < 600


@pytest.mark.slow
@pytest.mark.hours
def test_time_budgets_end_annealed_and_a_longer_one_is_no_worse(demo_run, tmp_path):
    scene = demo_run[0] / "scene"
    chamfers = {}
    for budget in (60, 120):
        run = tmp_path / f"demo-{budget}s"
        # Steps far beyond the budget: the time ends the run, and with it the schedule.
        nsr("train", "--data", scene, "--out", run, "--preset", "demo", "--max-seconds", budget,
            "--steps", "1000000", threads=0)  # fmt: skip
        record = json.loads((run / "schedule.json").read_text())
        step, seconds, progress, lr_factor = record["last"]
        assert record["max_seconds"] == budget and seconds <= budget
        assert progress > 0.97  # the last step ran at the end of the schedule ...
        assert lr_factor == pytest.approx(0.25)  # ... past both learning-rate cuts of the demo preset
        chamfers[budget] = chamfer_rel(run, scene)
        print(f"demo at {budget} s: {step + 1} steps, Chamfer {100 * chamfers[budget]:.3f}%")
    assert chamfers[120] <= chamfers[60]
