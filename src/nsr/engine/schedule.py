"""Where a run is: progress in [0, 1], from the steps done or the training time spent.

Every schedule of a run (learning rates, the mask-loss sharpness, coarse-to-fine grid levels and
frequency bands, camera warm-up and milestones, pocket-fill refreshes) is written in fractions of the
run and read at `run_progress`: the fraction of `steps` done or of `max_seconds` spent, whichever is
larger. A run cut by its time budget therefore goes through its whole schedule, annealed at the end,
whether the budget is 30 s or 10 minutes; a run without a budget follows its steps exactly (and
resumes bit for bit). With a time budget the progress of a step depends on the machine's speed, so two
such runs differ as their timings do.

The first step of each process is set-up as much as training: CUDA-graph capture (about 1 s), Inductor's
compiles (`compile_training`: 3-5 s on an H100 with a warm Inductor cache, 6-49 s cold). Its time counts
against the budget but the schedules' clock runs over what is left of it, so a warm-up of 2% of a 120 s run
is the first 2% of the training after that step, not swallowed by a compile (2026-12-06: a first step of
19 s left `neus-stylemod-nffb-fused` with 120 s no warm-up at all and its learning rates decayed to 0.7).

`ScheduleRecord` keeps what happened: the step, training time and learning-rate factor at every percent
of progress, written to RUN/schedule.json with the fractions themselves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nsr.atomic import atomic_write


def run_progress(
    step: int, seconds: float, steps: int, max_seconds: float = 0.0, setup_seconds: float = 0.0
) -> float:
    """max(step / steps, (seconds - setup) / (max_seconds - setup)) (the time term only with a budget),
    clipped to [0, 1]; `setup_seconds`: the time of the processes' first steps (see the module's doc)."""
    progress = step / max(1, steps)
    if max_seconds > 0:
        span = max_seconds - setup_seconds
        progress = max(progress, (seconds - setup_seconds) / span if span > 0 else 1.0)
    return min(1.0, max(0.0, progress))


class ScheduleRecord:
    """The run's schedule as it happened: a row (step, seconds, progress, lr factor) whenever progress
    passes another percent, plus the last step."""

    def __init__(self, steps: int, max_seconds: float, fractions: dict) -> None:
        self.steps = steps
        self.max_seconds = max_seconds
        self.fractions = fractions
        """The schedules in fractions of the run, by owner (optim, model, cameras, pockets)."""
        self.rows: list[list[float]] = []
        self.last: list[float] | None = None
        self.setup_seconds = 0.0
        """The time of the processes' first steps, which the schedules' clock leaves out."""

    def add(self, step: int, seconds: float, progress: float, lr_factor: float) -> None:
        """Record the state before step `step` (0-based) ran."""
        row = [step, round(seconds, 4), round(progress, 6), lr_factor]
        percent = math.floor(100 * progress + 1e-9)
        if not self.rows or percent > math.floor(100 * self.rows[-1][2] + 1e-9):
            self.rows.append(row)
        self.last = row

    def to_dict(self) -> dict:
        return {
            "progress": "max(step / steps, (seconds - setup_seconds) / (max_seconds - setup_seconds))"
            if self.max_seconds > 0
            else "step / steps",
            "steps": self.steps,
            "max_seconds": self.max_seconds,
            "setup_seconds": round(self.setup_seconds, 4),
            "fractions": self.fractions,
            "columns": ["step", "seconds", "progress", "lr_factor"],
            "rows": self.rows,
            "last": self.last,
        }

    def state_dict(self) -> dict:
        return {"rows": [list(r) for r in self.rows], "last": self.last, "setup_seconds": self.setup_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [list(r) for r in state["rows"]]
        self.last = state["last"]
        self.setup_seconds = state.get("setup_seconds", 0.0)  # checkpoints before 2026-12-06: none

    def save(self, path: str | Path) -> Path:
        text = json.dumps(self.to_dict(), indent=1)
        return atomic_write(path, lambda f: f.write(text.encode()))
