"""The jobs file: what it expands to, and one clear line for each mistake (no training here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from batch_helpers import make_scenes, write_jobs

from nsr.batch import JobsError, build_config, load_runs
from nsr.batch.jobs import UNLIMITED_STEPS
from nsr.cli.main import main
from nsr.config import get_preset


@pytest.fixture(scope="module")
def scenes_root(tiny_scene, tmp_path_factory):
    return make_scenes(tiny_scene, tmp_path_factory)


def _error(path) -> str:
    with pytest.raises(JobsError) as info:
        load_runs(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_combination_is_one_run_and_every_budget_its_own(scenes_root, tmp_path):
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "[ab]"), str(scenes_root / "c")],
        presets=["demo", "demo-cams"],
        seeds=[0, 3],
        steps=[10, 20],
        max_seconds=30,
        overrides={"cameras.pose_noise": "2,0.02,{seed}", "model.background": [1, 1, 1]},
        variants={"fixed": {"cameras.trainable": False, "cameras.pose_noise": ""}, "trained": {}},
    )
    _, specs = load_runs(jobs_file)
    assert len(specs) == 3 * 2 * 2 * 2 * 2
    assert len({s.name for s in specs}) == len(specs)
    assert {s.scene_label for s in specs} == {"a", "b", "c"}
    spec = next(
        s
        for s in specs
        if s.preset == "demo-cams" and s.steps == 20 and s.seed == 3 and s.variant == "trained"
    )
    assert spec.name == "a_demo-cams_trained_20steps-30s_seed3"
    config = build_config(spec)
    assert config.steps == 20 and config.max_seconds == 30.0 and config.seed == 3
    assert config.cameras.pose_noise == "2,0.02,3" and config.model.background == (1.0, 1.0, 1.0)
    assert config.cameras.trainable
    assert config.data.holdout_every == 4 and config.tensorboard is False
    fixed = build_config(next(s for s in specs if s.name == "a_demo-cams_fixed_20steps-30s_seed3"))
    assert not fixed.cameras.trainable and fixed.cameras.pose_noise == "" and fixed.steps == 20
    others = [s.train_key() for s in specs if s.name != spec.name]
    assert spec.train_key() not in others


def test_a_changed_preset_is_another_job(scenes_root, tmp_path, monkeypatch):
    """The finished-run marker is keyed by the resolved config too: after a preset changes, a run of the
    preset as it was is not taken for a finished run of the new one."""
    from nsr.config import presets

    jobs_file = write_jobs(
        tmp_path / "jobs.yaml", scenes=[str(scenes_root / "a")], presets=["demo"], steps=10
    )
    _, (spec,) = load_runs(jobs_file)
    before = spec.train_key()
    assert spec.train_key() == before  # deterministic
    demo = presets.PRESETS["demo"]

    def changed():
        config = demo.make()
        config.model.loss.eikonal_weight *= 2
        return config

    monkeypatch.setitem(presets.PRESETS, "demo", dataclasses.replace(demo, make=changed))
    assert spec.train_key() != before


def test_exclude_leaves_out_the_runs_matching_every_key_of_an_entry(scenes_root, tmp_path):
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "a"), str(scenes_root / "b")],
        presets=["demo", "demo-cams"],
        seeds=[0, 1],
        max_seconds=[30, 60],
        variants={"fixed": {"cameras.trainable": False}, "trained": {}},
        exclude=[{"preset": "demo", "variant": "trained"}, {"scene": "b", "seed": 1, "max_seconds": 60}],
    )
    _, specs = load_runs(jobs_file)
    names = {s.name for s in specs}
    assert not any(s.preset == "demo" and s.variant == "trained" for s in specs)
    assert "a_demo-cams_trained_4steps-30s_seed0" in names and "a_demo_fixed_4steps-60s_seed1" in names
    assert not any(s.scene_label == "b" and s.seed == 1 and s.max_seconds == 60 for s in specs)
    # 2 scenes x (demo fixed + demo-cams x 2 variants) x 2 budgets x 2 seeds, less b's seed 1 at 60 s
    assert len(specs) == 2 * 3 * 2 * 2 - 3


def test_relative_paths_are_relative_to_the_jobs_file(scenes_root):
    jobs_file = write_jobs(
        scenes_root / "jobs.yaml", scenes=["a", "b"], gt_meshes={"b": "b/gt_mesh.ply"}, steps=None
    )
    _, specs = load_runs(jobs_file)
    assert [s.scene for s in specs] == [str(scenes_root / n) for n in "ab"]
    assert specs[0].gt_mesh is None and specs[1].gt_mesh == str(scenes_root / "b" / "gt_mesh.ply")
    assert specs[0].budget == "preset" and build_config(specs[0]).steps == get_preset("demo").steps


def test_unlimited_steps_make_time_only_budgets(scenes_root, tmp_path):
    jobs_file = write_jobs(tmp_path / "jobs.yaml", scenes=[str(scenes_root / "a")], steps="unlimited",
                           max_seconds=[30, 60])  # fmt: skip
    _, specs = load_runs(jobs_file)
    assert [s.name for s in specs] == ["a_demo_30s_seed0", "a_demo_60s_seed0"]
    config = build_config(specs[1])
    assert config.steps == UNLIMITED_STEPS > 100 * get_preset("demo").steps and config.max_seconds == 60.0
    big = write_jobs(tmp_path / "big.yaml", scenes=[str(scenes_root / "a")], steps=UNLIMITED_STEPS)
    assert load_runs(big)[1][0].budget == f"{UNLIMITED_STEPS}steps"  # a step budget on its own is shown


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"scenez": ["a"]}, "scenez: unknown key"),
        ({"scenes": []}, "scenes: no scenes given"),
        ({"scenes": None}, "scenes: no scenes given"),
        ({"scenes": ["nothing*"]}, "scenes: 'nothing*' matches no folder"),
        ({"scenes": ["missing"]}, "scenes: 'missing': no such folder"),
        ({"presets": ["hashgird"]}, "presets: unknown preset 'hashgird'"),
        ({"seeds": [0, "one"]}, "seeds: 'one' is not an integer"),
        ({"steps": [0]}, "steps: budgets must be > 0"),
        ({"steps": "unlimited", "max_seconds": None}, "steps: unlimited needs max_seconds"),
        ({"steps": "lots"}, "steps: 'lots' is not an integer"),
        (
            {"overrides": {"model.sdf.hiden_dim": 3}},
            "overrides: override 'model.sdf.hiden_dim': SDFFieldConfig",
        ),
        ({"overrides": {"tensorboard": "sometimes"}}, "overrides: override 'tensorboard=sometimes'"),
        ({"gt_meshes": {"c": "a/gt_mesh.ply"}}, "gt_meshes: 'c' is not one of the scenes"),
        ({"gt_meshes": {"a": "a/nothing.ply"}}, "gt_meshes: 'a': mesh 'a/nothing.ply' not found"),
        ({"cpus_per_run": 0}, "cpus_per_run: must be > 0"),
        ({"warm_up": -1}, "warm_up: must be >= 0"),
        ({"warm_up": "yes"}, "warm_up: 'yes' is not an integer"),
        ({"cull_masks": "some"}, "cull_masks: 'some': expected a dilation in pixels >= 0 or auto"),
        ({"cull_masks": -1}, "cull_masks: -1: expected a dilation in pixels >= 0 or auto"),
        ({"exclude": [{"presett": "demo"}]}, "exclude: 'presett': unknown key"),
        ({"exclude": [{"seed": "zero"}]}, "exclude: seed: 'zero' is not an integer"),
        ({"exclude": ["demo"]}, "exclude: 'demo': expected a mapping"),
        ({"exclude": [{"preset": "nffb"}]}, "exclude: {'preset': 'nffb'}: matches no run of the grid"),
        ({"exclude": [{"scene": "a"}]}, "exclude: leaves no run"),
    ],
)
def test_each_mistake_is_one_line_naming_the_file_and_key(scenes_root, tmp_path, keys, expected):
    keys = {"scenes": ["a"], **keys}
    jobs_file = write_jobs(scenes_root / f"bad_{len(str(keys))}.yaml", **keys)
    if keys["scenes"] is None:
        jobs_file.write_text(jobs_file.read_text() + "scenes:\n")
    message = _error(jobs_file)
    assert message.startswith(f"{jobs_file}: ") and expected in message


def test_a_file_that_is_not_a_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert "expected a mapping" in _error(tmp_path / "list.yaml")
    assert "jobs file not found" in _error(tmp_path / "none.yaml")


def test_only_the_scenes_of_the_chosen_runs_need_their_data(scenes_root, tmp_path, capsys):
    """`--only` on a machine with the data of its runs alone: the other scenes (and their GT meshes) may be
    absent; a missing scene of a chosen run is still one line naming it."""
    gone = tmp_path / "gone"
    jobs_file = write_jobs(
        tmp_path / "jobs.yaml",
        scenes=[str(scenes_root / "a"), str(gone)],
        seeds=[0, 1],
        gt_meshes={str(gone): str(gone / "gt_mesh.ply")},
    )
    out = tmp_path / "out"
    assert main(["batch", str(jobs_file), "--out", str(out), "--dry-run", "--only", "a_*"]) == 0
    listed = capsys.readouterr().out
    assert f"{'a_demo_4steps_seed1':60} to run" in listed
    assert f"{'gone_demo_4steps_seed0':60} not selected (--only)" in listed
    jobs, specs = load_runs(jobs_file, only=["a_*"])
    assert jobs.scenes == [str(scenes_root / "a"), str(gone)]
    assert [s.name for s in specs] == [
        "a_demo_4steps_seed0",
        "a_demo_4steps_seed1",
        "gone_demo_4steps_seed0",
        "gone_demo_4steps_seed1",
    ]

    missing = f"{jobs_file}: scenes: {str(gone)!r}: no such folder ({gone})"
    for only in ([], ["gone_*_seed1"], ["a_*_seed0", "*_seed1"]):
        with pytest.raises(JobsError, match="no such folder") as info:
            load_runs(jobs_file, only=only)
        assert str(info.value) == missing
    assert main(["batch", str(jobs_file), "--out", str(out), "--dry-run", "--only", "gone_*"]) == 1
    assert capsys.readouterr().err.strip() == f"nsr: error: {missing}"
    with pytest.raises(
        JobsError, match=r"--only: \*banana\* matches none of its runs \(a_demo_4steps_seed0, "
    ):
        load_runs(jobs_file, only=["*banana*"])


def test_the_command_prints_one_line(scenes_root, capsys):
    jobs_file = write_jobs(scenes_root / "typo.yaml", scenes=["a"], seed=[1])
    assert main(["batch", str(jobs_file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nsr: error: {jobs_file}: seed: unknown key (known keys: {', '.join(_keys())})"]


def _keys() -> list[str]:
    from nsr.batch.jobs import KEYS

    return KEYS


def test_a_fraction_that_just_misses_one_more_run_a_gpu_is_warned_about(scenes_root, capsys):
    """Ray starts a run only where its whole fraction is free: 0.34 packs two runs a GPU, not three."""
    from nsr.batch.jobs import packing_note

    assert (
        packing_note(0.34)
        == "gpus_per_run 0.34 packs 2 runs per GPU and leaves 0.32 of it unused; 0.33 packs 3"
    )
    assert [packing_note(g) for g in (None, 1, 0.5, 0.33, 0.25, 0.3)] == [None] * 6
    jobs_file = write_jobs(scenes_root / "packed.yaml", scenes=["a"], presets=["demo"], gpus_per_run=0.34)
    assert main(["batch", str(jobs_file), "--dry-run", "--out", str(scenes_root / "out")]) == 0
    assert capsys.readouterr().err.strip() == f"nsr: warning: {packing_note(0.34)}"


def test_cull_masks_takes_a_dilation_or_auto(scenes_root):
    from nsr.batch.jobs import load_jobs

    for value in (3, "auto"):
        jobs_file = write_jobs(scenes_root / f"cull_{value}.yaml", scenes=["a"], cull_masks=value)
        assert load_jobs(jobs_file).cull_masks == value


@pytest.mark.parametrize(
    "experiment",
    sorted(p.name for p in (Path(__file__).parents[2] / "benchmarks" / "experiments").glob("*.yaml")),
)
def test_every_experiment_file_gives_valid_configs(experiment, scenes_root, tmp_path):
    """The device sessions' experiment files stay valid as the configs change: every run's preset, variant
    and overrides build a config (their scenes, absent here, replaced by the tiny one)."""
    data = yaml.safe_load((Path(__file__).parents[2] / "benchmarks" / "experiments" / experiment).read_text())
    data["scenes"] = [str(scenes_root / "a")]
    data.pop("gt_meshes", None)
    data["exclude"] = [entry for entry in data.get("exclude", []) if "scene" not in entry]  # scenes replaced
    jobs_file = tmp_path / experiment
    jobs_file.write_text(yaml.safe_dump(data))
    _, specs = load_runs(jobs_file)
    assert specs
    for spec in {(s.preset, s.variant): s for s in specs}.values():  # one run of each preset and variant
        build_config(spec)
