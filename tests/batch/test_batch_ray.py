"""`nsr batch` on a local Ray instance (one per module: Ray starts slowly on 2 cores): a broken scene that
fails alone, a second invocation that runs only what did not finish; and (slow: each Ray worker imports
torch, ~5 s on 2 cores) a batch of six runs, and a killed worker that resumes from its checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time

import pytest
import torch
from batch_helpers import make_scenes, write_jobs

from nsr.batch import load_runs, read_results, run_batch
from nsr.batch.pipeline import worker_info

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def scenes_root(tiny_scene, tmp_path_factory):
    return make_scenes(tiny_scene, tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """Two CPUs: two runs at a time. `run_batch` uses a Ray already started in the process."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.mark.slow
def test_three_scenes_two_seeds_then_nothing_to_do(scenes_root, tmp_path):
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "[abc]")],
        seeds=[0, 1],
        gt_meshes={str(scenes_root / n): str(scenes_root / n / "gt_mesh.ply") for n in "abc"},
    )
    jobs, specs = load_runs(jobs_file)
    out = tmp_path / "out"
    outcome = run_batch(jobs, specs, out)
    assert outcome.backend.startswith("ray (0 GPUs, 2 CPUs; 0 GPU, 1 CPU per run")
    with (out / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6
    assert sorted((r["scene"], r["seed"]) for r in table) == [
        (s, str(seed)) for s in "abc" for seed in (0, 1)
    ]
    assert all(r["status"] == "ok" and r["steps"] == "4" and float(r["chamfer_pct"]) > 0 for r in table)
    # The same scene and seed give the same run, whichever worker ran it (the scenes are copies).
    rows = {(r["scene"], r["seed"]): r for r in table}
    assert rows[("a", "1")]["psnr"] == rows[("c", "1")]["psnr"] != rows[("a", "0")]["psnr"]

    workers = {s.name: worker_info(out / "runs" / s.name) for s in specs}
    again = run_batch(jobs, specs, out)
    assert again.skipped == 6 and again.backend == "nothing to run"
    assert {s.name: worker_info(out / "runs" / s.name) for s in specs} == workers  # no run started
    assert [r["name"] for r in read_results(out)] == [s.name for s in specs]


def test_a_broken_scene_fails_alone_and_only_it_runs_again(scenes_root, tmp_path):
    jobs, specs = load_runs(
        write_jobs(tmp_path / "jobs.yaml", scenes=[str(scenes_root / "broken"), str(scenes_root / "b")])
    )
    out = tmp_path / "out"
    broken, good = run_batch(jobs, specs, out).results
    assert good.status == "ok" and good.steps == 4
    assert broken.status == "failed" and broken.attempt == 1  # bad input: reported, not retried
    assert (
        broken.error
        == f"{scenes_root / 'broken'}: camera file not found (tried cameras.npz, cameras_sphere.npz)"
    )

    worker = worker_info(out / "runs" / good.name)
    again = run_batch(jobs, specs, out)
    assert again.skipped == 1 and worker_info(out / "runs" / good.name) == worker
    assert [r.status for r in again.results] == ["failed", "ok"]


def test_the_warm_ups_end_before_the_first_run_starts(scenes_root, tmp_path):
    """`warm_up` under Ray: one task a configuration (not a scene) with a run's resources, ended before the runs
    start, its folder removed."""
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "a"), str(scenes_root / "b")],
        warm_up=2,
        report=False,
    )
    jobs, specs = load_runs(jobs_file)
    out = tmp_path / "out"
    outcome = run_batch(jobs, specs, out)
    assert [r.status for r in outcome.results] == ["ok", "ok"]
    info = json.loads((out / "results.json").read_text())["batch"]
    (row,) = info["warm_up"]
    assert row["config"] == "demo" and row["steps"] == 2 and row["error"] == ""
    started = min(worker_info(out / "runs" / r.name)["started"] for r in outcome.results)
    assert info["started"] + row["seconds"] <= started
    assert not any((out / "warm_up").iterdir())


def _twin_runs(scenes_root, tmp_path, steps: int, checkpoint_every: int):
    """The runs of scenes a and b (copies of one scene), `steps` steps each, no report."""
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "a"), str(scenes_root / "b")],
        steps=steps,
        report=False,
        overrides={"checkpoint_every": checkpoint_every},
    )
    return load_runs(jobs_file)


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_resumes_exactly(scenes_root, tmp_path):
    # Scenes a and b are copies: b's run is the uninterrupted twin of a's, run beside it.
    steps = 60
    jobs, specs = _twin_runs(scenes_root, tmp_path, steps, checkpoint_every=5)
    out = tmp_path / "out"
    victim = out / "runs" / specs[0].name
    killed: list[int] = []

    def kill_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = worker_info(victim)
            if info is not None and (victim / "checkpoints" / "latest.pt").is_file():
                os.kill(info["pid"], signal.SIGKILL)
                killed.append(info["pid"])
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    outcome = run_batch(jobs, specs, out)
    killer.join()
    assert killed, "the run finished before it could be killed"
    resumed, twin = outcome.results
    assert resumed.status == "ok" and twin.status == "ok"
    assert resumed.attempt == 2 and twin.attempt == 1
    assert 0 < resumed.resumed_from_step < steps and resumed.steps == steps
    assert worker_info(victim)["pid"] != killed[0]

    final = [
        torch.load(out / "runs" / s.name / "checkpoints" / "latest.pt", weights_only=False)["model"]
        for s in specs
    ]
    assert final[0].keys() == final[1].keys()
    for key in final[0]:
        assert torch.equal(final[0][key], final[1][key]), key
    assert resumed.psnr == twin.psnr and resumed.chamfer_pct == twin.chamfer_pct


@pytest.mark.slow
def test_sigterm_winds_the_batch_down_and_the_next_invocation_resumes(scenes_root, tmp_path):
    """SIGTERM to the driver (a scheduler's time limit, `timeout`) while two runs train on Ray workers: each
    is sent SIGINT by `ray.cancel`, saves a checkpoint and returns as `interrupted`; the tables record both;
    the next invocation resumes both from where they stopped."""
    steps = 400
    jobs, specs = _twin_runs(
        scenes_root, tmp_path, steps, checkpoint_every=10000
    )  # the stop's checkpoint only
    out = tmp_path / "out"
    logs = [out / "runs" / s.name / "train_log.jsonl" for s in specs]

    def stop_once_both_train() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(log.is_file() and log.stat().st_size > 0 for log in logs):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    stopper = threading.Thread(target=stop_once_both_train, daemon=True)
    stopper.start()
    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, specs, out)
    stopper.join()
    rows = read_results(out)
    assert [r["status"] for r in rows] == ["interrupted", "interrupted"], [r["error"] for r in rows]
    stopped = [int(r["error"].split(" at step ")[1].split(",")[0]) for r in rows]
    assert all(0 < s < steps for s in stopped) and all("by SIGINT" in r["error"] for r in rows)

    outcome = run_batch(jobs, specs, out)
    assert [r.status for r in outcome.results] == ["ok", "ok"]
    assert [r.resumed_from_step for r in outcome.results] == stopped
    assert all(r.steps == steps for r in outcome.results)
