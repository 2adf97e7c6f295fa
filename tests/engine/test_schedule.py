"""Schedules in fractions of the run: the presets' schedules at their own length are the schedules they
were measured with; a time budget goes through the whole schedule; old run folders still load."""

import itertools
import json
import math
import time

import pytest
import yaml

from conftest import tiny_config
from nsr.config import get_preset
from nsr.config.io import load_yaml
from nsr.config.train import CONFIG_KIND, OptimConfig, TrainConfig
from nsr.data.idr import load_idr_scene
from nsr.engine import Trainer
from nsr.engine.pockets import PocketFill
from nsr.engine.schedule import run_progress
from nsr.models import mask_alpha


def changes(values: list) -> list[int]:
    """The steps at which a per-step sequence changes value."""
    return [s for s in range(1, len(values)) if values[s] != values[s - 1]]


def test_the_grid_presets_schedules_at_15000_steps_are_the_measured_schedules():
    config = get_preset("hashgrid-fused")
    steps = config.steps
    assert steps == 15000
    progress = [run_progress(s, 0.0, steps) for s in range(steps)]
    lr = [config.optim.lr_factor_at(p) for p in progress]
    # the hash grid's smooth decay (since 2026-12-06) reaches 0.03x at the run's end, as do the banks'
    assert lr[0] == 1.0 and all(b < a for a, b in itertools.pairwise(lr))
    assert lr[-1] == pytest.approx(0.03, rel=1e-3)
    bank = get_preset("nffb-fused-cams")
    assert [bank.optim.lr_factor_at(p) for p in progress] == lr
    style = get_preset("stylemod-nffb-fused-cams").optim
    assert [style.lr_factor_at(p) for p in progress] == lr
    bank_encoding = bank.model.sdf.encoding.build(3)
    bank_levels = []
    for p in progress:
        bank_encoding.set_progress(p)
        bank_levels.append(bank_encoding.grid.active_levels)
    assert bank_levels[0] == 2 and changes(bank_levels) == list(range(1500, 9001, 1500))
    alpha = [mask_alpha(config.model.loss, p) for p in progress]
    assert changes(alpha) == [1000, 2000, 3000, 4000, 5000]
    grid = config.model.sdf.encoding.build(3)
    levels = []
    for p in progress[:3000]:
        grid.set_progress(p)
        levels.append(grid.active_levels)
    assert levels[0] == 6 and changes(levels) == list(range(250, 2501, 250)) and levels[-1] == 16
    # The -cams variant: the same schedules over its 1.5x steps; the cameras frozen for 1000 steps, cut at
    # 50% and 75%, the pocket fill from 20% every 2/15 of the run.
    cams = get_preset("hashgrid-fused-cams")
    assert cams.steps == 22500
    progress = [run_progress(s, 0.0, cams.steps) for s in range(cams.steps)]
    assert changes([mask_alpha(cams.model.loss, p) for p in progress]) == [1500, 3000, 4500, 6000, 7500]
    cameras = [cams.cameras.lr_factor_at(p) for p in progress]
    assert changes(cameras) == [1000, 11250, 16875] and cameras[999] == 0.0
    fill = PocketFill(cams.pockets, "cpu", 0)
    refreshes = []
    for s, p in enumerate(progress):
        if fill.due(p):
            refreshes.append(s)
            fill.refreshes = cams.pockets.refresh_index(p)
    assert refreshes == list(range(4500, 19501, 3000))


def test_the_demo_schedule_at_2000_steps():
    config = get_preset("demo")
    progress = [run_progress(s, 0.0, config.steps) for s in range(config.steps)]
    assert changes([config.optim.lr_factor_at(p) for p in progress]) == [1200, 1700]
    assert changes([mask_alpha(config.model.loss, p) for p in progress]) == [400, 800, 1200, 1600]
    cams = get_preset("demo-cams")  # 3000 steps
    progress = [run_progress(s, 0.0, cams.steps) for s in range(cams.steps)]
    assert changes([cams.optim.lr_factor_at(p) for p in progress]) == [1800, 2550]
    assert changes([cams.cameras.lr_factor_at(p) for p in progress]) == [450, 1500, 2250]


def test_progress_follows_whichever_limit_ends_the_run():
    assert run_progress(10, 0.0, 100) == 0.1
    assert run_progress(10, 30.0, 100, max_seconds=60.0) == 0.5  # the budget is half spent
    assert run_progress(90, 30.0, 100, max_seconds=60.0) == 0.9  # the steps are further
    assert run_progress(10, 90.0, 100, max_seconds=60.0) == 1.0
    # the first steps' set-up time is left out of the schedules' clock, not out of the budget
    assert run_progress(10, 20.0, 100, max_seconds=60.0, setup_seconds=20.0) == 0.1
    assert run_progress(10, 40.0, 100, max_seconds=60.0, setup_seconds=20.0) == 0.5
    assert run_progress(10, 60.0, 100, max_seconds=60.0, setup_seconds=20.0) == 1.0
    assert run_progress(10, 70.0, 100, max_seconds=60.0, setup_seconds=70.0) == 1.0


def test_a_slow_first_step_does_not_eat_the_warm_up(tiny_scene, tmp_path, monkeypatch):
    """The first step of a process (CUDA-graph capture, Inductor's compiles) counts against the budget, but the
    schedules run over the rest of it: the step after a first step of half the budget is still at the start
    of the warm-up, and the run still ends annealed; a resumed run adds its own first step."""
    config = tiny_config(tiny_scene, steps=10**6)
    config.max_seconds = 3.0
    config.optim.warmup = 0.1
    config.checkpoint_every = 10**6
    config.val_every = 0
    config.tensorboard = False
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    loss = trainer.model.training_loss
    calls = []

    def slow_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.0)
        return loss(*args, **kwargs)

    monkeypatch.setattr(trainer.model, "training_loss", slow_first)
    after_first = []
    trainer.on_step = lambda m: after_first.append(trainer.progress()) if m.step == 1 else None
    trainer.train()
    record = json.loads((tmp_path / "run" / "schedule.json").read_text())
    assert record["setup_seconds"] >= 1.0 and trainer.seconds >= 3.0
    # the second step's progress: without the set-up it would be 0.5 or more, past the warm-up
    assert after_first[0] < 0.02 and config.optim.lr_factor_at(after_first[0]) < 0.2
    assert record["last"][2] > 0.8  # and ends annealed
    state = trainer.state_dict()
    resumed = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run2")
    resumed.load_state(state)
    assert resumed.schedule.setup_seconds == pytest.approx(record["setup_seconds"], abs=1e-3)


@pytest.mark.parametrize("kind", ["step", "cosine", "exponential"])
def test_learning_rate_schedules_start_at_one_and_end_annealed(kind):
    optim = OptimConfig(schedule=kind, lr_milestones=(0.5,), lr_factor=0.1, final_factor=0.1)
    assert optim.lr_factor_at(0.0) == 1.0
    assert optim.lr_factor_at(1.0) == pytest.approx(0.1)
    values = [optim.lr_factor_at(p / 100) for p in range(101)]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(values))  # never goes up
    if kind == "cosine":
        assert optim.lr_factor_at(0.5) == pytest.approx(0.55)
    if kind == "exponential":
        assert optim.lr_factor_at(0.5) == pytest.approx(math.sqrt(0.1))
    warm = OptimConfig(schedule=kind, warmup=0.1)
    assert warm.lr_factor_at(0.0) == 0.0 and warm.lr_factor_at(0.05) == pytest.approx(0.5)


def test_a_time_budget_goes_through_the_whole_schedule(tiny_scene, tmp_path):
    config = tiny_config(tiny_scene, steps=10**6)
    config.max_seconds = 2.0
    config.checkpoint_every = 10**6
    config.val_every = 0
    config.tensorboard = False
    trainer = Trainer(config, load_idr_scene(tiny_scene), tmp_path / "run")
    trainer.train()
    assert trainer.seconds >= 2.0 and trainer.step < 10**6
    record = yaml.safe_load((tmp_path / "run" / "schedule.json").read_text())
    step, _seconds, progress, lr_factor = record["last"]
    assert step == trainer.step - 1 and progress > 0.8  # the last step ran near the end of the schedule
    assert lr_factor == pytest.approx(config.optim.lr_factor_at(progress)) and lr_factor == 0.25  # annealed
    assert (
        record["progress"] == "max(step / steps, (seconds - setup_seconds) / (max_seconds - setup_seconds))"
    )
    assert record["fractions"]["model"]["mask_alpha_milestones"] == [0.2, 0.4, 0.6, 0.8]
    percents = [math.floor(100 * row[2] + 1e-9) for row in record["rows"]]
    assert percents == sorted(set(percents)) and percents[0] == 0


def test_a_version_1_run_config_loads_with_its_schedules_in_fractions(tmp_path):
    old = {
        "kind": "train",
        "schema_version": 1,
        "config": {
            "steps": 15000,
            "model": {
                "sdf": {"encoding": {"kind": "hashgrid", "start_levels": 6, "steps_per_level": 250}},
                "loss": {"alpha_milestones": [1000, 2000]},
            },
            "optim": {"lr_milestones": [8000, 12000]},
            "cameras": {"warmup_steps": 1000, "lr_milestones": [7500, 11250]},
            "pockets": {"start": 3000, "every": 2000},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    config = load_yaml(TrainConfig, path, CONFIG_KIND)
    assert config.model.kind == "idr"
    assert config.model.sdf.encoding.unlock_every == pytest.approx(250 / 15000)
    assert config.model.loss.alpha_milestones == pytest.approx((1000 / 15000, 2000 / 15000))
    assert config.optim.lr_milestones == pytest.approx((8000 / 15000, 0.8))
    assert config.cameras.warmup_until == pytest.approx(1000 / 15000)
    assert config.cameras.lr_milestones == pytest.approx((0.5, 0.75))
    assert (config.pockets.start, config.pockets.every) == pytest.approx((0.2, 2 / 15))
