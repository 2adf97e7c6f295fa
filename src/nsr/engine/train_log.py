"""RUN/train_log.jsonl: the training curves as plain JSON lines, with or without TensorBoard.

One line every `log_every` steps, after the first and after the last: the step, the training time, the
total loss, the networks' learning rate, the model's loss terms and its indicators (`psnr`; NeuS's `inv_s`
and `opacity`; IDR's `hit_ratio` and `alpha`; ...). A resumed run first drops the lines after the step it resumes from
(they belong to the continuation it abandons), so the file always describes the run that the checkpoints
hold. A line cut short by a killed process is skipped when reading.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from nsr.atomic import atomic_write

TRAIN_LOG = "train_log.jsonl"
"""File name in the run folder."""


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class TrainLog:
    """Appends training metrics to RUN/train_log.jsonl."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / TRAIN_LOG

    def truncate_after(self, step: int) -> None:
        """Keep only the lines of steps <= `step` (and drop damaged ones); nothing to do without a file."""
        if not self.path.is_file():
            return
        kept = [row for row in read_train_log(self.path) if row["step"] <= step]
        text = "".join(json.dumps(row) + "\n" for row in kept)
        atomic_write(self.path, lambda f: f.write(text.encode()))

    def append(self, step: int, seconds: float, loss: float, lr: float, values: dict[str, float]) -> None:
        """One line: step, seconds, loss, lr and `values` (loss terms and indicators; non-finite as null)."""
        row = {
            "step": int(step),
            "seconds": round(float(seconds), 3),
            "loss": _number(loss),
            "lr": _number(lr),
        }
        row.update({key: _number(value) for key, value in values.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def last_logged(run_dir: str | Path) -> dict:
    """The last line of RUN/train_log.jsonl (the run's final step), or {} when there is none."""
    path = Path(run_dir) / TRAIN_LOG
    rows = read_train_log(path) if path.is_file() else []
    return rows[-1] if rows else {}


def read_train_log(path: str | Path) -> list[dict]:
    """The lines of a train log as dicts, in order; lines that do not parse (a write cut short) are skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows
