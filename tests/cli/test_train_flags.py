"""`nsr train`'s short flags and help, the progress bar of the run, CPU threads."""

from __future__ import annotations

import dataclasses
import io
import os

import pytest
import torch

from nsr.cli.common import (
    TrainProgress,
    available_cores,
    busy_cores,
    default_threads,
    pop_threads,
    set_threads,
)
from nsr.cli.train import ALIASES, expand_aliases, help_text, parse
from nsr.config.train import DataConfig
from nsr.engine.trainer import StepMetrics


def test_short_flags_set_their_fields():
    args = parse(["--out", "r", "--downscale", "4", "--steps", "7", "--max-seconds", "30", "--holdout=8"])
    assert args.config.data.downscale == 4 and args.config.data.holdout_every == 8
    assert args.config.steps == 7 and args.config.max_seconds == 30
    assert expand_aliases(["--downscale=2", "--data", "x"]) == ["--data.downscale=2", "--data.path", "x"]


@pytest.mark.skipif(
    "background" not in {f.name for f in dataclasses.fields(DataConfig)},
    reason="data.background is not in DataConfig yet",
)
def test_background_flag():
    assert ALIASES["--background"] == "--data.background"
    assert parse(["--out", "r", "--background", "1,1,1"]).config.data.background == "1,1,1"


def test_help_lists_the_short_flags_first():
    text = help_text()
    for flag in (
        "--data DIR",
        "--downscale D",
        "--steps N",
        "--max-seconds S",
        "--background",
        "--threads N",
    ):
        assert flag in text
    for alias in ALIASES:  # every alias is listed
        assert alias in text
    assert text.index("--downscale") < text.index("Every field")


def metrics(step: int, seconds: float) -> StepMetrics:
    return StepMetrics(step=step, loss=0.5, lr=1e-3, seconds=seconds, terms={}, metrics={"psnr": 20.0})


@pytest.fixture
def quiet_tqdm(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())


def test_progress_follows_the_limit_that_ends_the_run(quiet_tqdm):
    # a time budget that ends the run long before its steps: the bar follows the time
    bar = TrainProgress(steps=100_000, max_seconds=20)
    bar(metrics(10, 5.0))
    assert bar.bar.n == pytest.approx(25.0) and bar.bar.total == 100
    assert "step 10/100000" in bar.bar.postfix and "5/20 s" in bar.bar.postfix
    bar.close()
    # steps that end the run first: the bar follows the steps
    bar = TrainProgress(steps=40, max_seconds=1000)
    bar(metrics(10, 5.0))
    assert bar.bar.n == pytest.approx(25.0)
    bar.close()
    # a resumed run starts where it was
    bar = TrainProgress(steps=40, step=20, seconds=3.0)
    assert bar.bar.n == pytest.approx(50.0)
    bar(metrics(30, 4.0))
    assert bar.bar.n == pytest.approx(75.0)
    bar.close()


def test_default_threads_leave_busy_cores_alone():
    assert default_threads(cores=2, load=0.1, torch_default=2) == 2  # an idle machine: torch's choice
    assert default_threads(cores=2, load=1.2, torch_default=2) == 1  # one core busy elsewhere
    assert default_threads(cores=2, load=9.0, torch_default=2) == 1  # never fewer than one
    assert default_threads(cores=16, load=3.0, torch_default=8) == 8  # never more than torch's default
    assert 1 <= available_cores() <= (os.cpu_count() or 1)


def test_busy_cores_are_what_the_cpus_do_now(tmp_path, monkeypatch):
    """The busy share of all CPUs' time between two readings of /proc/stat, times the CPUs."""
    stat = tmp_path / "stat"

    def write(user, system, idle, iowait):  # /proc/stat of a 2-CPU machine
        first = f"cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0"
        stat.write_text("\n".join([first, "cpu0 0 0 0 0 0 0 0 0 0 0", "cpu1 0 0 0 0 0 0 0 0 0 0", "intr 5"]))

    def measure(before, after):
        write(*before)
        monkeypatch.setattr("nsr.cli.common.time.sleep", lambda seconds: write(*after))
        return busy_cores(stat=stat)

    # 200 new jiffies: 100 busy (user + system), 80 idle, 20 iowait -> one of two cores busy
    assert measure((1000, 500, 4000, 100), (1070, 530, 4080, 120)) == pytest.approx(1.0)
    assert measure((1000, 500, 4000, 100), (1000, 500, 4200, 100)) == 0.0  # idle now, whatever before
    assert measure((1000, 500, 4000, 100), (1100, 600, 4000, 100)) == pytest.approx(2.0)  # both busy
    monkeypatch.undo()
    assert busy_cores(stat=tmp_path / "missing") >= 0.0  # no /proc/stat (macOS): the load average
    # On this machine: between none and all of its cores.
    assert 0.0 <= busy_cores(interval=0.05) <= (os.cpu_count() or 1) + 0.5


def test_threads_flag(monkeypatch):
    assert pop_threads(["a", "--threads", "3", "b"]) == (["a", "b"], 3)
    assert pop_threads(["--threads=2"]) == ([], 2)
    assert pop_threads(["a"]) == (["a"], None)
    with pytest.raises(SystemExit, match="whole number"):
        pop_threads(["--threads", "x"])
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(2)
        assert set_threads(None) == 2  # the user's OMP_NUM_THREADS: torch's setting is kept
    finally:
        torch.set_num_threads(before)
