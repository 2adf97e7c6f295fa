"""`nsr batch --address local`: the pipeline as a plain loop in this process (no Ray)."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal

import pytest
from batch_helpers import make_scenes, write_jobs

from nsr.batch import load_runs, pipeline, read_results, run_batch
from nsr.cli.main import main
from nsr.engine.run import open_run


@pytest.fixture(scope="module")
def scenes_root(tiny_scene, tmp_path_factory):
    return make_scenes(tiny_scene, tmp_path_factory)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_a_batch_trains_meshes_measures_and_reports_each_run(scenes_root, tmp_path):
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "a"), str(scenes_root / "broken")],
        gt_meshes={str(scenes_root / "a"): str(scenes_root / "a" / "gt_mesh.ply")},
    )
    out = tmp_path / "out"
    assert main(["batch", str(jobs_file), "--out", str(out), "--address", "local"]) == 1  # one run failed

    rows = {r["scene"]: r for r in read_results(out)}
    ok, broken = rows["a"], rows["broken"]
    assert ok["status"] == "ok" and ok["steps"] == 4 and ok["it_per_s"] > 0 and ok["attempt"] == 1
    # where a run's wall time went: training (with its I/O) and the measurements after it
    assert 0 < ok["train_seconds"] <= ok["train_wall_seconds"] and ok["eval_seconds"] > 0
    assert ok["train_wall_seconds"] + ok["eval_seconds"] <= ok["seconds"]
    assert 0 < ok["setup_seconds"] < ok["train_seconds"]
    assert (
        0 < ok["chamfer_pct"] < 100
        and 0 <= ok["fscore"] <= 1
        and ok["fscore_threshold_pct"] == pytest.approx(0.5)
    )
    assert ok["psnr"] > 5 and ok["psnr_mask"] > 0 and 0 < ok["ssim"] <= 1
    assert ok["train_psnr"] > 5 and ok["inv_s"] is None  # the last training batch; IDR has no inv_s
    assert ok["rotation_deg_mean"] is None  # the scene's own cameras: nothing to measure
    assert broken["status"] == "failed" and broken["steps"] is None
    assert (
        broken["error"]
        == f"{scenes_root / 'broken'}: camera file not found (tried cameras.npz, cameras_sphere.npz)"
    )

    run_dir = out / "runs" / ok["name"]
    step_dir = run_dir / "eval" / "step_0000004"
    assert (run_dir / "mesh_0000004.ply").is_file() and (run_dir / "report.html").is_file()
    assert json.loads((step_dir / "geometry.json").read_text())["chamfer_rel"] == pytest.approx(
        ok["chamfer_pct"] / 100
    )
    assert json.loads((step_dir / "summary.json").read_text())["psnr"] == pytest.approx(ok["psnr"])
    assert open_run(run_dir, device="cpu").step == 4  # any nsr command re-opens a batch run
    with (out / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok", "failed"]
    index = (out / "index.html").read_text()
    assert f"href='runs/{ok['name']}/report.html'" in index and "camera file not found" in index


def test_finished_runs_are_skipped_and_new_measurements_reuse_the_training(scenes_root, tmp_path):
    out = tmp_path / "out"
    jobs, specs = load_runs(write_jobs(tmp_path / "jobs.yaml", scenes=[str(scenes_root / "a")]))
    first = run_batch(jobs, specs, out, address="local")
    assert first.skipped == 0 and first.backend == "in-process loop"
    again = run_batch(jobs, specs, out, address="local")
    assert again.skipped == 1 and again.backend == "nothing to run"
    assert again.results[0].train_key == first.results[0].train_key

    # On another machine the result files alone (no checkpoints, meshes or renders) mark the runs finished:
    # how a batch goes on after its machine is gone (benchmarks/device/untested.sh carries them back).
    moved = tmp_path / "moved"
    for spec in specs:
        marker = out / "runs" / spec.name / "batch_result.json"
        (moved / "runs" / spec.name).mkdir(parents=True)
        (moved / "runs" / spec.name / "batch_result.json").write_bytes(marker.read_bytes())
    elsewhere = run_batch(jobs, specs, moved, address="local")
    assert elsewhere.skipped == 1 and elsewhere.results[0].chamfer_pct == first.results[0].chamfer_pct
    assert [r["name"] for r in read_results(moved)] == [spec.name for spec in specs]

    # Asking for another measurement re-measures the trained run without training it again.
    jobs, specs = load_runs(
        write_jobs(tmp_path / "jobs.yaml", scenes=[str(scenes_root / "a")], mesh_resolution=16)
    )
    remeasured = run_batch(jobs, specs, out, address="local")
    assert remeasured.skipped == 0 and remeasured.results[0].resumed_from_step == 4

    # Other training settings in the same folder are refused, not mixed with the old run.
    jobs, specs = load_runs(
        write_jobs(tmp_path / "jobs.yaml", scenes=[str(scenes_root / "a")], overrides={"optim.lr": 1e-3})
    )
    refused = run_batch(jobs, specs, out, address="local").results[0]
    assert refused.status == "failed" and "holds a run of another job" in refused.error


def test_only_runs_the_chosen_runs_and_keeps_the_finished_ones_in_the_tables(scenes_root, tmp_path, capsys):
    jobs_file = write_jobs(tmp_path / "jobs.yaml", scenes=[str(scenes_root / "a")], seeds=[0, 1])
    jobs, specs = load_runs(jobs_file)
    seed0, seed1 = (spec.name for spec in specs)
    out = tmp_path / "out"
    assert main(["batch", str(jobs_file), "--out", str(out), "--address", "local", "--only", "*_seed1"]) == 0
    assert [r["name"] for r in read_results(out)] == [seed1]
    assert not (out / "runs" / seed0).exists()

    capsys.readouterr()
    assert main(["batch", str(jobs_file), "--out", str(out), "--dry-run", "--only", "*_seed1"]) == 0
    listed = capsys.readouterr().out
    assert f"{seed0:60} not selected (--only)" in listed and f"{seed1:60} finished" in listed

    # Without the filter the rest runs; with it again, nothing runs and the table keeps both.
    rest = run_batch(jobs, specs, out, address="local")
    assert rest.skipped == 1 and [r.name for r in rest.results] == [seed0, seed1]
    again = run_batch(jobs, specs, out, address="local", only=["*_seed0"])
    assert again.backend == "nothing to run" and [r["name"] for r in read_results(out)] == [seed0, seed1]

    # A pattern that matches nothing is a one-line error naming the jobs file.
    assert main(["batch", str(jobs_file), "--out", str(out), "--only", "*banana*"]) == 1
    assert f"{jobs_file}: --only: *banana* matches none of its runs" in capsys.readouterr().err


def test_a_warm_up_trains_each_configuration_once_before_the_timed_runs(
    scenes_root, tmp_path, capsys, monkeypatch
):
    """`warm_up: N`: N untimed steps of each (preset, variant) before any timed run, in OUT/warm_up/ (removed
    after), reported in the tables' info, on the index page and as a line each; the timed runs as without it."""
    from nsr.batch import runners

    out = tmp_path / "out"
    calls = []

    def recording(spec, steps, warm_dir):
        calls.append((spec.preset, spec.variant, steps, sorted(p.name for p in (out / "runs").iterdir())))
        return pipeline.warm_up(spec, steps, warm_dir)

    monkeypatch.setattr(runners, "warm_up", recording)
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "a"), str(scenes_root / "b")],
        variants={"wide": {}, "narrow": {"model.sdf.hidden_dim": 40}},
        warm_up=2,
    )
    assert main(["batch", str(jobs_file), "--out", str(out), "--address", "local"]) == 0
    # one warm-up a configuration (not a scene), both before the first run's folder was made
    assert calls == [("demo", "wide", 2, []), ("demo", "narrow", 2, [])]
    info = json.loads((out / "results.json").read_text())["batch"]
    assert [(w["config"], w["steps"], w["error"]) for w in info["warm_up"]] == [
        ("demo_wide", 2, ""),
        ("demo_narrow", 2, ""),
    ]
    assert all(w["seconds"] > 0 for w in info["warm_up"])
    assert not any((out / "warm_up").iterdir())
    rows = read_results(out)
    assert len(rows) == 4 and all(r["status"] == "ok" and r["steps"] == 4 for r in rows)
    assert "Untimed warm-up before the runs" in (out / "index.html").read_text()
    assert "warmed up demo_narrow (2 steps) in" in capsys.readouterr().err


def test_a_failing_warm_up_is_a_row_not_an_exception(scenes_root, tmp_path):
    """A configuration whose warm-up fails leaves its error in the row (its timed runs report it in full) and
    no folder behind."""
    _, specs = load_runs(write_jobs(tmp_path / "jobs.yaml", scenes=[str(scenes_root / "broken")]))
    row = pipeline.warm_up(specs[0], 2, tmp_path / "warm")
    assert row["config"] == "demo" and row["steps"] == 0 and "camera file not found" in row["error"]
    assert not (tmp_path / "warm" / "demo").exists()


def test_runs_from_moved_cameras_report_camera_errors(scenes_root, tmp_path):
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "a")],
        presets=["demo-cams"],
        seeds=[2],
        overrides={"cameras.pose_noise": "2,0.02,{seed}"},
        gt_meshes={str(scenes_root / "a"): str(scenes_root / "a" / "gt_mesh.ply")},
        icp=True,
    )
    jobs, specs = load_runs(jobs_file)
    result = run_batch(jobs, specs, tmp_path / "out", address="local").results[0]
    assert result.status == "ok", result.error
    # Four steps barely move the cameras: the errors are about those of the 2-degree / 2% noise.
    assert 1 < result.rotation_deg_mean_before < 3 and 1 < result.rotation_deg_mean < 3
    assert (
        result.rotation_deg_mean <= result.rotation_deg_max
        and result.centre_pct_mean <= result.centre_pct_max
    )
    assert 0.5 < result.centre_pct_mean_before < 3 and result.chamfer_pct is not None
    run_dir = tmp_path / "out" / "runs" / result.name
    assert (run_dir / "mesh_aligned_0000004.ply").is_file() and (run_dir / "eval_cameras.json").is_file()
    # `icp: true`: the mesh measured again after ICP has moved it onto the GT (here a blob near the
    # initial sphere, which ICP cannot make much worse)
    geometry = json.loads((run_dir / "eval" / "step_0000004" / "geometry.json").read_text())
    assert result.chamfer_icp_pct == pytest.approx(100 * geometry["icp"]["chamfer_rel"])
    assert 0 < result.chamfer_icp_pct <= 1.05 * result.chamfer_pct
    assert {"rotation_deg", "shift_rel", "scale"} <= set(geometry["icp"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_batch_saves_its_run_and_the_next_resumes_it(
    scenes_root, tmp_path, signum, capsys, monkeypatch
):
    """Ctrl-C or SIGTERM (a scheduler's time limit) while a run trains: it finishes its step, saves a
    checkpoint and is recorded as `interrupted`; the batch stops before its next run; the next invocation
    resumes the run from that checkpoint and runs the rest."""
    # progress after every step (not every 0.5 s), so that the signal comes a third of the way into the first
    # run however fast this machine trains its 30 steps
    monkeypatch.setattr(pipeline, "_fraction", functools.partial(pipeline._fraction, every=0.0))
    jobs, specs = load_runs(
        write_jobs(
            tmp_path / "jobs.yaml",
            scenes=[str(scenes_root / "a"), str(scenes_root / "b")],
            steps=30,
            report=False,
            overrides={"checkpoint_every": 1000},  # no periodic checkpoint: the stop's own is the one
        )
    )
    out = tmp_path / "out"
    sent = []

    def stop_a_third_of_the_way(state):
        if not sent and state.completed > 0.3:
            sent.append(signum)
            os.kill(os.getpid(), signum)

    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, specs, out, address="local", progress=stop_a_third_of_the_way)
    [row] = read_results(out)  # the second run never started
    assert row["status"] == "interrupted" and row["name"] == specs[0].name
    stopped_at = int(row["error"].split(" at step ")[1].split(",")[0])
    assert 0 < stopped_at < 30
    assert row["error"].startswith(
        f"stopped by {signal.Signals(signum).name} at step {stopped_at}, checkpoint"
    )
    assert open_run(out / "runs" / specs[0].name, device="cpu").step == stopped_at
    index = (out / "index.html").read_text()
    assert "0 ok, 0 failed, 1 interrupted" in index and "<tr class='interrupted'>" in index
    assert main(["batch", str(tmp_path / "jobs.yaml"), "--out", str(out), "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert f"{specs[0].name:60} to run (resumes; last attempt interrupted: {row['error']})" in listed
    assert f"{specs[1].name:60} to run" in listed

    outcome = run_batch(jobs, specs, out, address="local")
    resumed, second = outcome.results
    assert resumed.status == second.status == "ok" and resumed.steps == second.steps == 30
    assert resumed.resumed_from_step == stopped_at and second.resumed_from_step == 0
