"""The batch's progress: a log file gets a few lines, not one a training step."""

from __future__ import annotations

import dataclasses
import io

from nsr.batch import BatchProgress, RunResult
from nsr.batch.pipeline import _fraction
from nsr.cli.batch import BatchBar
from nsr.engine.trainer import StepMetrics


def test_bar_in_a_log_file_redraws_rarely_but_writes_every_finished_run():
    log = io.StringIO()
    bar = BatchBar(file=log)
    state = BatchProgress(total=2, skipped=0, done=0, failed=0, running=1, completed=0.0)
    for i in range(2000):  # a fast run's updates, far more often than a log needs
        bar(dataclasses.replace(state, completed=i / 2000))
    assert log.getvalue().count("\r") <= 3, log.getvalue()
    result = RunResult(name="run-a", scene="s", preset="p", variant="", seed=0, budget="30s", status="ok")
    result.steps, result.seconds = 1200, 31.0
    bar(dataclasses.replace(state, done=1, running=0, completed=1.0, finished=result))
    bar.close()
    text = log.getvalue()
    assert "done run-a: 1200 steps, 31 s" in text
    assert "done=1/2" in text.rsplit("\r", 1)[-1]  # the last redraw shows the finished run


def test_fraction_reports_at_most_every_interval(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("nsr.batch.pipeline.time.monotonic", lambda: clock[0])
    seen: list[float] = []
    on_step = _fraction(steps=1000, max_seconds=0.0, progress=seen.append, every=0.5)

    def step(i: int) -> None:
        on_step(StepMetrics(step=i, loss=0.0, lr=0.0, seconds=i * 0.001, terms={}, metrics={}))

    for i in range(1, 301):  # 300 steps in 0.3 s: one report
        clock[0] += 0.001
        step(i)
    assert seen == [0.001]
    clock[0] += 0.5
    step(400)
    assert seen == [0.001, 0.4]
