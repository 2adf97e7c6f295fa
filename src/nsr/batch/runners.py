"""Running a batch: every run of a jobs file through `run_one`, on Ray or in a plain loop in this process.

Ray (`pip install "nsr[ray]"`) schedules each run as a task with `gpus_per_run` GPUs (a fraction packs
several runs on one GPU) and `cpus_per_run` cores, on a local instance or on a cluster (`address`). A task
whose worker process or node dies is started again (Ray's `max_retries`) and resumes from the run's latest
checkpoint; a run that fails on its input reports its error and is not retried. Without Ray, or with
`address="local"`, the same runs go one after another in this process. Either way, runs finished by an
earlier invocation (RUN/batch_result.json of the same job) are skipped, and OUT/results.csv,
OUT/results.json and OUT/index.html are rewritten as runs finish.

Stopping: Ctrl-C or SIGTERM (a job scheduler's time limit, `timeout`) stops the batch gracefully. Each run
in training finishes its step, saves a checkpoint and is recorded as `interrupted` (Ray gets up to
`STOP_GRACE_SECONDS` for it); runs not started are dropped; the tables are written; the next invocation
resumes the interrupted runs. A second Ctrl-C stops at once.

Multi-node: every node must see the scenes and OUT at the same paths (a shared filesystem) and have NSR
installed (docs/batch.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nsr.accel.probe import has_ray
from nsr.batch.jobs import BatchJobs, RunSpec, selected
from nsr.batch.pipeline import (
    BatchError,
    RunResult,
    finished_result,
    new_result,
    run_one,
    warm_up,
    warm_up_specs,
    worker_info,
)
from nsr.batch.results import write_results

log = logging.getLogger("nsr.batch")

WARM_DIR = "warm_up"
"""OUT/warm_up/: the warm-up runs' folders while they train (`BatchJobs.warm_up`)."""

STOP_GRACE_SECONDS = 60.0
"""How long a stopped Ray batch waits for its running runs to save their checkpoints before ending them."""


@dataclass
class BatchProgress:
    """The state of a batch, reported after each change."""

    total: int
    skipped: int
    """Runs finished by an earlier invocation (not run again)."""
    done: int
    """Runs finished in this invocation."""
    failed: int
    running: int
    completed: float
    """Runs finished in this invocation plus the finished fraction of the running ones where known
    (the in-process loop knows it; under Ray a run counts when it ends)."""
    finished: RunResult | None = None
    """The run whose end this update reports (None for other updates)."""
    note: str | None = None
    """A line this update reports (a warm-up's end), else None."""


@dataclass
class BatchOutcome:
    """What a batch did."""

    results: list[RunResult]
    """One per run, in the jobs file's order."""
    out: Path
    backend: str
    """How it ran, e.g. `ray (4 GPUs, 64 CPUs; 0.25 GPU, 1 CPU per run)` or `in-process loop`."""
    seconds: float
    skipped: int

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status != "ok"]


def use_ray(address: str) -> bool:
    """Whether `address` means Ray here: `local` never; `auto` when Ray is installed; any other address
    must have Ray (BatchError otherwise)."""
    if address == "local":
        return False
    if has_ray():
        return True
    if address == "auto":
        log.warning("Ray is not installed (pip install 'nsr[ray]'): the runs go one after another here")
        return False
    raise BatchError(f"--address {address} needs Ray: pip install 'nsr[ray]'")


def run_batch(
    jobs: BatchJobs,
    specs: list[RunSpec],
    out: str | Path,
    address: str = "auto",
    progress: Callable[[BatchProgress], None] | None = None,
    source: str = "",
    only: Sequence[str] = (),
) -> BatchOutcome:
    """Run `specs` (from `nsr.batch.jobs.load_runs`) into OUT/runs/<name>, with the tables in OUT.

    `address`: `auto` (Ray: RAY_ADDRESS, a cluster started on this machine with `ray start`, or a new local
    instance; the in-process loop without Ray), `local` (the in-process loop), or a Ray address
    (`ray://HEAD:10001`, `HEAD:6379`). A Ray already initialised in this process is used as it is.
    `source` (the jobs file) is recorded in the tables. `only`: run only the runs whose names match one of
    these shell patterns (`selected`); the finished runs of `specs` stay in the tables whatever they are."""
    out = Path(out)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    batch_id = uuid.uuid4().hex[:12]
    results: dict[str, RunResult] = {}
    todo = []
    for spec in specs:
        previous = finished_result(spec, runs_dir)
        if previous is not None:
            results[spec.name] = previous
        elif selected(spec, only):
            todo.append(spec)
    skipped = len(results)
    state = BatchProgress(
        total=skipped + len(todo), skipped=skipped, done=0, failed=0, running=0, completed=0.0
    )
    info = {"jobs": source, "started": started, "runs": len(specs), "skipped": skipped, "backend": ""}
    if only:
        info["only"] = list(only)
    earlier = _earlier_invocations(out)

    def write() -> None:
        info["seconds"] = time.time() - started
        ran = state.done + state.failed
        now = {k: info[k] for k in ("started", "seconds", "backend")}
        info["invocations"] = [*earlier, {**now, "ran": ran}]
        write_results(out, ordered(), info)

    def ordered() -> list[RunResult]:
        return [results[s.name] for s in specs if s.name in results]

    def tick(running: int, fraction: float = 0.0) -> None:
        state.running = running
        state.completed = state.done + state.failed + fraction
        if progress is not None:
            progress(dataclasses.replace(state, finished=None))

    def warmed(row: dict) -> None:
        info.setdefault("warm_up", []).append(row)
        outcome = f"failed: {row['error']}" if row["error"] else f"{row['steps']} steps"
        if progress is not None:
            note = f"warmed up {row['config']} ({outcome}) in {row['seconds']:.1f} s"
            progress(dataclasses.replace(state, finished=None, note=note))

    def finish(result: RunResult) -> None:
        results[result.name] = result
        if result.status == "ok":
            state.done += 1
        else:
            state.failed += 1
        state.completed = state.done + state.failed
        write()
        if progress is not None:
            progress(dataclasses.replace(state, finished=result))

    tick(0)
    warm = warm_up_specs(todo) if jobs.warm_up > 0 else []
    if not todo:
        info["backend"] = "nothing to run"
    elif use_ray(address):
        _run_on_ray(todo, runs_dir, jobs, address, batch_id, finish, tick, info, warm, warmed)
    else:
        info["backend"] = "in-process loop"
        with sigterm_as_interrupt():
            for spec in warm:
                warmed(warm_up(spec, jobs.warm_up, out / WARM_DIR))
            _run_in_process(todo, runs_dir, batch_id, finish, tick)
    tick(0)
    write()
    return BatchOutcome(
        results=ordered(), out=out, backend=info["backend"], seconds=info["seconds"], skipped=skipped
    )


def _run_in_process(
    todo: list[RunSpec],
    runs_dir: Path,
    batch_id: str,
    finish: Callable[[RunResult], None],
    tick: Callable[..., None],
) -> None:
    """Run `todo` one after another in this process; a run interrupted while training stops the batch."""
    for spec in todo:
        tick(1)
        result = run_one(spec, runs_dir, lambda f: tick(1, f), batch_id)
        finish(result)
        if result.status == "interrupted":  # the trainer noted Ctrl-C / SIGTERM and saved: stop here
            raise KeyboardInterrupt(result.error)


def _ray_task(spec: RunSpec, runs_dir: str, batch_id: str) -> RunResult:
    """What a Ray worker runs (module level, so that workers import it by name)."""
    return run_one(spec, runs_dir, batch_id=batch_id)


def _reason(err: Exception) -> str:
    """The first line of a Ray error (why a worker died)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _warm_up_task(spec: RunSpec, steps: int, warm_dir: str) -> dict:
    """What a Ray worker runs for a warm-up (module level, so that workers import it by name)."""
    return warm_up(spec, steps, warm_dir)


def _warm_up_on_ray(ray, warm: Sequence[RunSpec], steps: int, warm_dir: str, options: dict, warmed) -> None:
    """The warm-ups of `warm` as Ray tasks with a run's resources (`options`), each row to `warmed`, all of them
    ended before this returns; stopped, it cancels those still running."""
    task = ray.remote(_warm_up_task)
    refs = {task.options(name=f"warm-up {s.preset}", **options).remote(s, steps, warm_dir): s for s in warm}
    with sigterm_as_interrupt():
        try:
            for ref, spec in refs.items():
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as err:
                    name = "_".join(part for part in (spec.preset, spec.variant) if part)
                    row = {
                        "config": name,
                        "steps": 0,
                        "seconds": 0.0,
                        "error": f"its worker died: {_reason(err)}",
                    }
                warmed(row)
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)
            raise


def _run_on_ray(
    todo: list[RunSpec],
    runs_dir: Path,
    jobs: BatchJobs,
    address: str,
    batch_id: str,
    finish: Callable[[RunResult], None],
    tick: Callable[[int], None],
    info: dict,
    warm: Sequence[RunSpec] = (),
    warmed: Callable[[dict], None] = lambda row: None,
) -> None:
    """Run `todo` as Ray tasks, after the warm-ups of `warm` (each as a task with a run's resources, all of them
    ended before the first run starts; `warmed` gets each one's row); `info["backend"]` says on what."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=None if address == "auto" else address, log_to_driver=False, logging_level=logging.WARNING
        )
    pending: dict = {}
    try:
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0.0)), float(resources.get("CPU", 0.0))
        per_gpu = jobs.gpus_per_run if jobs.gpus_per_run is not None else (1.0 if gpus > 0 else 0.0)
        if not 0 <= per_gpu <= 1:
            raise BatchError(f"gpus_per_run {per_gpu:g}: between 0 and 1 (a run trains on one GPU)")
        if per_gpu > gpus:
            raise BatchError(f"gpus_per_run {per_gpu:g}, but the Ray cluster has {gpus:g} GPUs")
        if jobs.cpus_per_run > cpus:
            raise BatchError(f"cpus_per_run {jobs.cpus_per_run:g}, but the Ray cluster has {cpus:g} CPUs")
        info["backend"] = (
            f"ray ({gpus:g} GPUs, {cpus:g} CPUs; {per_gpu:g} GPU, {jobs.cpus_per_run:g} CPU per run, "
            f"{jobs.max_retries} retries)"
        )
        task = ray.remote(_ray_task)
        options = {
            "num_gpus": per_gpu,
            "num_cpus": jobs.cpus_per_run,
            "max_retries": jobs.max_retries,
            "retry_exceptions": False,
        }
        if warm:
            _warm_up_on_ray(ray, warm, jobs.warm_up, str(runs_dir.parent / WARM_DIR), options, warmed)
        for spec in todo:
            pending[task.options(name=spec.name, **options).remote(spec, str(runs_dir), batch_id)] = spec
        with sigterm_as_interrupt():
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    spec = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        tries = jobs.max_retries + 1
                        result = new_result(
                            spec, runs_dir, "failed", error=f"its worker died {tries} time(s): {_reason(err)}"
                        )
                    finish(result)
                tick(sum(1 for spec in pending.values() if _started(runs_dir / spec.name, batch_id)))
    except KeyboardInterrupt:
        _wind_down(pending, finish)
        raise
    finally:
        if started_here:
            ray.shutdown()


def _wind_down(pending: dict, finish: Callable[[RunResult], None]) -> None:
    """The batch was stopped: ask every task to stop (`ray.cancel` without force sends a running task SIGINT,
    which the trainer takes as Ctrl-C: it saves a checkpoint and its run returns as `interrupted`; a task not
    started is dropped), record the runs that return within `STOP_GRACE_SECONDS`, then end the rest."""
    import ray

    for ref in pending:
        ray.cancel(ref, force=False)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while pending and time.monotonic() < deadline:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError:
                continue  # dropped before it started, or stopped outside training: nothing to record
            finish(result)
    for ref in pending:
        ray.cancel(ref, force=True)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While in the block (main thread only), SIGTERM raises KeyboardInterrupt as Ctrl-C does, so that a
    scheduler's or `timeout`'s stop winds the batch down instead of killing it (and its runs) outright."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _earlier_invocations(out: Path) -> list[dict]:
    """The invocations recorded in OUT/results.json by earlier runs of the batch (for total wall times)."""
    try:
        return list(json.loads((out / "results.json").read_text())["batch"].get("invocations", []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _started(run_dir: Path, batch_id: str) -> bool:
    info = worker_info(run_dir)
    return info is not None and info.get("batch") == batch_id


__all__ = ["BatchOutcome", "BatchProgress", "run_batch", "use_ray"]
