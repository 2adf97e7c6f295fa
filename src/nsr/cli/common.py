"""What every subcommand shares: friendly errors and progress bars."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from nsr.engine.errors import TrainingInterrupted
from nsr.engine.machine import record_machine
from nsr.engine.schedule import run_progress
from nsr.engine.trainer import StepMetrics, Trainer
from nsr.errors import USER_ERRORS, one_line

REPORT_LINE = (
    "nsr: unexpected error (a bug in NSR, or an input it should have explained in one line): please report "
    "it with the traceback above and the command you ran"
)


def friendly(fn: Callable[[], int]) -> int:
    """Run a command; NSR's own errors (`nsr.errors.USER_ERRORS`) become one line on stderr and exit
    code 1; an interrupted training run says how to resume; anything else is a bug: its traceback, then a
    line asking to report it."""
    try:
        return fn()
    except USER_ERRORS as err:
        print(f"nsr: error: {one_line(err)}", file=sys.stderr)
        return 1
    except TrainingInterrupted as err:
        saved = (
            f"saved {err.checkpoint}" if err.checkpoint is not None else "no checkpoint to resume from yet"
        )
        print(
            f"nsr: stopped by {err.signal_name} at step {err.step}; {saved}; "
            f"resume with: {err.resume_command}",
            file=sys.stderr,
        )
        return err.exit_code
    except KeyboardInterrupt:
        print("nsr: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(REPORT_LINE, file=sys.stderr)
        return 1


class TrainProgress:
    """A tqdm bar of the run's progress in percent (`nsr.engine.schedule.run_progress`: steps done or
    training time spent, whichever is further), so that its ETA follows whichever of `steps` and
    `max_seconds` ends the run; shows the step, it/s, loss, PSNR and the model's indicators. Fed by the
    trainer's `on_step`."""

    BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"

    def __init__(
        self,
        steps: int,
        max_seconds: float = 0.0,
        step: int = 0,
        seconds: float = 0.0,
        desc: str = "train",
        keys: tuple[str, ...] = (),
    ) -> None:
        self.steps, self.max_seconds = steps, max_seconds
        self.start_step = step
        self.bar = tqdm(
            total=100.0,
            initial=self.percent(step, seconds),
            desc=desc,
            dynamic_ncols=True,
            smoothing=0.05,
            bar_format=self.BAR_FORMAT,
        )
        self.keys = keys
        """The model's indicators shown besides the loss and PSNR (`Model.progress_keys`)."""
        self.shown: dict[str, str] = {}

    def percent(self, step: int, seconds: float) -> float:
        return 100.0 * run_progress(step, seconds, self.steps, self.max_seconds)

    def __call__(self, m: StepMetrics) -> None:
        if m.step % 10 == 0 or m.step == 1:
            self.shown = {key: f"{m.metrics[key]:.4g}" for key in self.keys if key in m.metrics}
            self.shown = {"loss": f"{m.loss:.4f}", "psnr": f"{m.psnr:.2f}", **self.shown}
        elapsed = self.bar.format_dict["elapsed"]
        rate = (m.step - self.start_step) / elapsed if elapsed > 0 else 0.0
        position = f"step {m.step}/{self.steps}"
        if self.max_seconds > 0:
            position += f", {m.seconds:.0f}/{self.max_seconds:g} s"
        extras = ", ".join(f"{k}={v}" for k, v in self.shown.items())
        self.bar.set_postfix_str(f"{position}, {rate:.2f} it/s, {extras}", refresh=False)
        self.bar.update(self.percent(m.step, m.seconds) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def train_with_progress(trainer: Trainer, resume: bool) -> None:
    """Optionally resume from the run's latest checkpoint, then train with a progress bar."""
    if resume and trainer.resume():
        print(f"resuming {trainer.run_dir} at step {trainer.step}")
    if trainer.progress() < 1:  # a session that trains
        record_machine(trainer.run_dir, trainer.device, trainer.step)
    config = trainer.config
    bar = TrainProgress(
        config.steps, config.max_seconds, trainer.step, trainer.seconds, keys=trainer.model.progress_keys
    )
    trainer.on_step = bar
    trainer.on_view = ViewProgress()
    try:
        trainer.train()
    finally:
        bar.close()
        trainer.on_view.close()


class ViewProgress:
    """A bar below the training bar while a validation view renders, shown once the view has taken a second
    (a GPU preset's view on a CPU: minutes, the last one after the training bar reached 100%) and gone when
    the view is done."""

    def __init__(self, desc: str = "validation view") -> None:
        self.desc = desc
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(
                total=total, desc=self.desc, unit="chunk", dynamic_ncols=True, leave=False, delay=1.0
            )
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables through which the user already chose torch's CPU threads."""


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_cores(interval: float = 0.2, stat: Path = Path("/proc/stat")) -> float:
    """How many of the machine's cores other processes keep busy now: the busy share of all CPUs' time over
    `interval` seconds (`stat`'s first line, before and after), times the number of CPUs. Falls back to the
    1-minute load average where there is no /proc/stat.

    Not the load average alone: it lags by about a minute, so a training that starts right after another
    one ended (a test, a benchmark, `nsr batch --address local`) read the finished one as busy and ran on
    one of two idle cores, 1.6x slower (measured, 2-core machine, 2026-12-05)."""
    try:
        before = _cpu_times(stat)
        time.sleep(interval)
        after = _cpu_times(stat)
        cpus = sum(1 for line in stat.read_text().splitlines() if line[:3] == "cpu" and line[3:4].isdigit())
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    total = after[0] - before[0]
    return (after[1] - before[1]) / total * cpus if total > 0 else 0.0


def _cpu_times(stat: Path) -> tuple[int, int]:
    """(all, busy) jiffies of all CPUs so far: the first line of /proc/stat (user nice system idle iowait
    irq softirq steal; guest time is inside user); busy is all but idle and iowait."""
    fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:9]]
    return sum(fields), sum(fields) - fields[3] - fields[4]


def default_threads(cores: int, load: float, torch_default: int) -> int:
    """Threads for a CPU computation when the user chose none: the cores that other processes leave free
    (cores minus those busy now, `busy_cores`, rounded), at least 1, at most torch's own default. On a
    shared machine, more threads than free cores stall at every parallel region (OpenMP threads spin,
    waiting for a thread that is not scheduled): one thread was several times faster than two on a busy
    2-core machine."""
    free = math.floor(cores - load + 0.5)
    return max(1, min(torch_default, free))


def set_threads(requested: int | None = None) -> int:
    """Set torch's CPU threads: `requested` (`--threads N`); else the user's OMP_NUM_THREADS /
    MKL_NUM_THREADS (torch honoured it already); else `default_threads` of this machine now. Says what it
    chose when it chose fewer threads than torch would have. Returns the thread count."""
    import torch

    if requested is not None:
        if requested < 1:
            raise SystemExit(f"nsr: error: --threads must be >= 1, got {requested}")
        torch.set_num_threads(requested)
        return requested
    if any(os.environ.get(name) for name in THREAD_VARIABLES):
        return torch.get_num_threads()
    cores, current = available_cores(), torch.get_num_threads()
    if current == 1:
        return 1  # nothing to choose (and no need to sample the CPUs)
    load = busy_cores()
    threads = default_threads(cores, load, current)
    if threads != current:
        torch.set_num_threads(threads)
        # Debug level: a line on every command would break the one-line errors users and scripts read.
        logging.getLogger("nsr.cli").debug(
            "%d CPU thread%s (%d cores, %.1f busy with other processes; --threads N to choose)",
            threads,
            "" if threads == 1 else "s",
            cores,
            load,
        )
    return threads


def pop_threads(argv: list[str]) -> tuple[list[str], int | None]:
    """`argv` without `--threads N` / `--threads=N`, and N (None when absent)."""
    rest, value, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--threads" and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    if value is None:
        return rest, None
    try:
        return rest, int(value)
    except ValueError:
        raise SystemExit(f"nsr: error: --threads takes a whole number, got {value!r}") from None
