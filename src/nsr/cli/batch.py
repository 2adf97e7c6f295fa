"""`nsr batch JOBS.yaml [--out DIR] [--address auto|local|ray://HEAD:10001]`: every run of a jobs file.

Each combination of scene x preset x budget x seed trains, is meshed, measured (held-out images, Chamfer
against a ground-truth mesh, cameras) and reported in OUT/runs/<name>/; the table of all runs is
OUT/results.csv (+ results.json) and OUT/index.html. Runs go on Ray when it is installed (`pip install
"nsr[ray]"`), several to a GPU with `gpus_per_run` < 1, else one after another here. Running the same
command again skips the finished runs and resumes the others from their checkpoints. See docs/batch.md.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TextIO

import tyro
from tqdm import tqdm

from nsr.batch import BatchProgress, RunResult, load_runs, run_batch
from nsr.batch.jobs import packing_note
from nsr.batch.pipeline import finished_result, last_attempt
from nsr.batch.runners import selected
from nsr.cli.common import friendly


@dataclass
class BatchArgs:
    """Run every combination of a jobs file's scenes, presets, budgets and seeds (docs/batch.md)."""

    jobs: Annotated[Path, tyro.conf.Positional]
    """Jobs file (YAML): scenes, presets, seeds, steps / max_seconds, overrides, gt_meshes, ..."""
    out: Path | None = None
    """Output folder (default runs/batch-<jobs file name>): runs/<name>/, results.csv, results.json,
    index.html."""
    address: str = "auto"
    """`auto`: Ray (RAY_ADDRESS, a cluster started here with `ray start`, else a new local instance), or
    this process without Ray; `local`: one run after another in this process; `ray://HEAD:10001` or
    `HEAD:6379`: that Ray cluster."""
    gpus_per_run: float | None = None
    """GPUs per run under Ray, overriding the jobs file (0.25: four runs share a GPU)."""
    cpus_per_run: float | None = None
    """CPU cores per run under Ray, overriding the jobs file."""
    only: tuple[str, ...] = ()
    """Run only the runs whose names match one of these shell patterns (`'*spot*' '*_120s_*'`: a
    scene, a budget, ...); the other finished runs stay in the tables. `--dry-run` shows the choice."""
    dry_run: bool = False
    """List the runs (and which are finished) without running anything."""


def run(argv: list[str]) -> int:
    args = tyro.cli(BatchArgs, args=argv, prog="nsr batch")
    return friendly(lambda: _run(args))


def _run(args: BatchArgs) -> int:
    jobs, specs = load_runs(args.jobs, only=args.only)
    if args.gpus_per_run is not None:
        jobs = dataclasses.replace(jobs, gpus_per_run=args.gpus_per_run)
    if args.cpus_per_run is not None:
        jobs = dataclasses.replace(jobs, cpus_per_run=args.cpus_per_run)
    out = args.out or Path("runs") / f"batch-{args.jobs.stem}"
    note = packing_note(jobs.gpus_per_run)
    if note:
        print(f"nsr: warning: {note}", file=sys.stderr)
    if args.dry_run:
        for spec in specs:
            state = "finished" if finished_result(spec, out / "runs") else "to run"
            if state == "to run" and not selected(spec, args.only):
                state = "not selected (--only)"
            elif state == "to run" and (last := last_attempt(spec, out / "runs")) is not None:
                again = "resumes" if last.status == "interrupted" else "runs again"
                state = f"to run ({again}; last attempt {last.status}: {last.error})"
            print(f"{spec.name:60} {state}")
        print(f"{len(specs)} runs into {out}")
        return 0
    counts = [
        (len(jobs.scenes), "scenes"),
        (len(jobs.presets), "presets"),
        (len(jobs.variants), "variants"),
        (max(len(jobs.steps), 1) * max(len(jobs.max_seconds), 1), "budgets"),
        (len(jobs.seeds), "seeds"),
    ]
    shape = " x ".join(f"{n} {what}" for n, what in counts if n > 0)
    chosen = (
        f", {sum(selected(spec, args.only) for spec in specs)} of them chosen by --only" if args.only else ""
    )
    print(f"{len(specs)} runs ({shape}{chosen}) into {out}")
    bar = BatchBar()
    try:
        outcome = run_batch(jobs, specs, out, args.address, bar, source=str(args.jobs), only=args.only)
    except KeyboardInterrupt:
        bar.close()
        print("nsr: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    finally:
        bar.close()
    ran = len(outcome.results) - outcome.skipped
    print(f"{outcome.backend}: {ran} runs in {outcome.seconds:.0f} s ({outcome.skipped} finished earlier)")
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'} and {out / 'index.html'}")
    if outcome.failed:
        print(f"nsr: {len(outcome.failed)} of {len(specs)} runs failed:", file=sys.stderr)
        for r in outcome.failed:
            print(f"  {r.name}: {r.error}", file=sys.stderr)
        return 1
    return 0


def _describe(r: RunResult) -> str:
    if r.status != "ok":
        return f"{r.status} {r.name}: {r.error}"
    parts = [f"{r.steps} steps", f"{r.seconds:.0f} s"]
    if r.chamfer_pct is not None:
        parts.append(f"Chamfer {r.chamfer_pct:.3f}%")
    if r.psnr is not None:
        parts.append(f"PSNR {r.psnr:.2f} dB")
    if r.rotation_deg_max is not None:
        parts.append(f"rotation max {r.rotation_deg_max:.3f} deg")
    if r.attempt > 1:
        parts.append(f"attempt {r.attempt}, resumed at step {r.resumed_from_step}")
    return f"done {r.name}: " + ", ".join(parts)


class BatchBar:
    """A tqdm bar over the batch's runs (done / running / failed, ETA), fed by `run_batch`'s progress."""

    def __init__(self, file: TextIO | None = None) -> None:
        self.bar: tqdm | None = None
        self.file = file if file is not None else sys.stderr

    def __call__(self, state: BatchProgress) -> None:
        if self.bar is None:
            # Runs finished earlier start the bar, so that the ETA counts only this invocation's pace. Written
            # to a log file (no terminal), each redraw is a new line: there it redraws at most every 30 s.
            self.bar = tqdm(
                total=state.total,
                initial=state.skipped,
                desc="batch",
                unit="run",
                dynamic_ncols=True,
                file=self.file,
                mininterval=0.5 if _is_terminal(self.file) else 30.0,
                bar_format="{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]",  # n counts running runs' fractions
            )
        if state.finished is not None:
            self.bar.write(_describe(state.finished), file=self.file)
        if state.note is not None:
            self.bar.write(state.note, file=self.file)
        self.bar.n = state.skipped + state.completed
        self.bar.set_postfix(
            done=f"{state.done + state.skipped}/{state.total}",
            running=state.running,
            failed=state.failed,
            refresh=False,
        )
        if state.finished is not None:
            self.bar.refresh()
        else:
            self.bar.update(0)  # redraws only when `mininterval` has passed since the last redraw

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_terminal(file: TextIO) -> bool:
    isatty = getattr(file, "isatty", None)
    return bool(isatty and isatty())
