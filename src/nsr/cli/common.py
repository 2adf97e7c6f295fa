"""What every subcommand shares: friendly errors and progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from nsr.engine.trainer import StepMetrics, Trainer
from nsr.errors import USER_ERRORS, one_line


def friendly(fn: Callable[[], int]) -> int:
    """Run a command; user errors become one line on stderr and exit code 1, not a traceback."""
    try:
        return fn()
    except USER_ERRORS as err:
        print(f"nsr: error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nsr: interrupted (resume with --resume)", file=sys.stderr)
        return 130


class TrainProgress:
    """A tqdm bar showing loss and PSNR, fed by the trainer's `on_step`."""

    def __init__(self, total: int, initial: int = 0, desc: str = "train", keys: tuple[str, ...] = ()) -> None:
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, smoothing=0.05)
        self.keys = keys
        """The model's indicators shown besides the loss and PSNR (`Model.progress_keys`)."""

    def __call__(self, m: StepMetrics) -> None:
        self.bar.update(m.step - self.bar.n)
        if m.step % 10 == 0 or m.step == 1:
            shown = {key: f"{m.metrics[key]:.4g}" for key in self.keys if key in m.metrics}
            self.bar.set_postfix(loss=f"{m.loss:.4f}", psnr=f"{m.psnr:.2f}", **shown, refresh=False)

    def close(self) -> None:
        self.bar.close()


def train_with_progress(trainer: Trainer, resume: bool) -> None:
    """Optionally resume from the run's latest checkpoint, then train with a progress bar."""
    if resume and trainer.resume():
        print(f"resuming {trainer.run_dir} at step {trainer.step}")
    bar = TrainProgress(total=trainer.config.steps, initial=trainer.step, keys=trainer.model.progress_keys)
    trainer.on_step = bar
    try:
        trainer.train()
    finally:
        bar.close()


class CountProgress:
    """A tqdm bar for (done, total) callbacks (mesh extraction, scene generation)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, dynamic_ncols=True, leave=False)
        self.bar.total = total  # may grow (narrow-band marching cubes schedules finer levels as it goes)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send prints to stderr inside the block (so that `--json` output alone reaches stdout)."""
    stdout = sys.stdout
    if enabled:
        sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = stdout
