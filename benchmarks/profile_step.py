"""Time training steps of presets on a scene: ms/step, rays/s and how busy the GPU is during a step.

    python benchmarks/profile_step.py --scene .data/synthetic_spot_mitsuba --presets hashgrid-fused \
        neus-hashgrid-fused --rays 1024 2048 4096 8192 --json out.json
    python benchmarks/profile_step.py --scene ... --presets demo --modes compact static static+graph
    python benchmarks/profile_step.py --scene ... --presets nffb-fused --set model.sdf.encoding.compile=cuda
    python benchmarks/profile_step.py --scene ... --presets nffb-fused stylemod-nffb-fused --modes static+graph \
        --versus model.sdf.encoding.written_backward=off --rounds 4     # A against B, alternated, one process

For every (preset, rays, tracer mode) case, `--steps` steps are timed after `--warmup` steps (wall clock,
synchronised; `--set KEY=VALUE` overrides config fields as `nsr batch` jobs files do), then 5 steps are profiled: `matmuls_per_step` counts the matrix products (also on a CPU),
`kernels_per_step` the GPU kernels launched, and `gpu_busy` is the summed duration of the GPU kernels over the
wall time of those steps (1.0: the GPU never waits for the host; kernels overlapping on several streams
could push it above 1, which NSR's single stream does not). `--table` prints the profiler's top kernels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from nsr.cli.train import with_overrides
from nsr.config import get_preset
from nsr.data.idr import load_idr_scene
from nsr.engine.trainer import Trainer


def make_trainer(preset: str, scene, rays: int, mode: str, overrides: list[str] = ()) -> Trainer:
    config = with_overrides(get_preset(preset), list(overrides))
    config.tensorboard = False
    config.val_every = 0
    config.rays_per_batch = rays
    if config.model.kind == "idr" and mode != "preset":
        config.model.tracer.mode = "static" if mode.startswith("static") else "compact"
        config.model.tracer.cuda_graph = mode.endswith("+graph")
    return Trainer(config, scene, Path(tempfile.mkdtemp()))


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def warm_up(trainer: Trainer, steps: int) -> float:
    """Seconds of `steps` untimed steps (the CUDA graphs' capture and Inductor's compiles: with an empty
    TORCHINDUCTOR_CACHE_DIR, a cold compile)."""
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync()
    return time.perf_counter() - start


def time_steps(trainer: Trainer, steps: int, warmup: int = 5) -> tuple[float, float]:
    """ms a step over `steps` steps, and the seconds of the `warmup` steps before them (`warm_up`)."""
    warmup_seconds = warm_up(trainer, warmup)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync()
    return (time.perf_counter() - start) / steps * 1000, warmup_seconds


def time_alternately(
    trainers: list[Trainer], steps: int, warmup: int, rounds: int
) -> tuple[list[list[float]], list[float]]:
    """ms a step of each trainer in each of `rounds` rounds of `steps` steps, the trainers' order reversed every
    other round so that none always runs first (on an H100 the order of two presets in a process moved the ratio
    of their step times from 0.68x to 0.78x; benchmarks/RESULTS.md section 2), and each one's warm-up seconds."""
    warmups = [warm_up(trainer, warmup) for trainer in trainers]
    times: list[list[float]] = [[] for _ in trainers]
    for round_ in range(rounds):
        order = range(len(trainers)) if round_ % 2 == 0 else reversed(range(len(trainers)))
        for index in order:
            times[index].append(time_steps(trainers[index], steps, warmup=0)[0])
    return times, warmups


MATMULS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
"""The matrix products as the profiler names them (einsum, matmul and linear end in one of these)."""


def profile_steps(trainer: Trainer, steps: int = 5, table: bool = False) -> dict:
    """Over `steps` profiled steps: matrix products per step (CPU or GPU); on CUDA also kernels per
    step and `gpu_busy`, the summed kernel time over the wall time."""
    sync()
    start = time.perf_counter()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step()
        sync()
    wall = time.perf_counter() - start
    events = prof.events()
    row = {"matmuls_per_step": sum(e.name in MATMULS for e in events) / steps}
    if torch.cuda.is_available():
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        row["kernels_per_step"] = len(kernels) / steps
        row["gpu_busy"] = sum(e.device_time for e in kernels) / 1e6 / wall  # microseconds -> seconds
    else:
        row["gpu_busy"] = None
    if table:
        sort = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
        print(prof.key_averages().table(sort_by=sort, row_limit=15))
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--presets", nargs="+", default=["hashgrid-fused"])
    parser.add_argument("--rays", type=int, nargs="+", default=[2048])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, caches)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument(
        "--modes", nargs="+", default=["preset"], help="preset | compact | static | static+graph"
    )
    parser.add_argument(
        "--versus",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="a second configuration (--set plus these overrides) timed alternately with the first in the same "
        "process, case by case",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of --steps steps a configuration; the median is reported",
    )
    parser.add_argument("--table", action="store_true", help="print the top kernels of each case")
    parser.add_argument("--json", type=Path, help="write the cases here")
    args = parser.parse_args()
    scene = load_idr_scene(args.scene)
    variants = [args.set] + ([args.set + args.versus] if args.versus else [])
    rows = []
    for preset in args.presets:
        for rays in args.rays:
            for mode in args.modes:
                trainers = [make_trainer(preset, scene, rays, mode, overrides) for overrides in variants]
                times, warmups = time_alternately(trainers, args.steps, args.warmup, args.rounds)
                for trainer, overrides, ms_rounds, warmup_seconds in zip(
                    trainers, variants, times, warmups, strict=True
                ):
                    ms = statistics.median(ms_rounds)
                    row = {
                        "preset": preset,
                        "set": overrides,
                        "rays": rays,
                        "mode": mode,
                        "ms_per_step": round(ms, 2),
                        "ms_rounds": [round(t, 2) for t in ms_rounds],
                        "rays_per_s": round(rays * 1000 / ms),
                        "warmup_s": round(warmup_seconds, 1),
                        **profile_steps(trainer, table=args.table),
                        # with --versus: the peak of both configurations' trainers, which share the process
                        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                        if torch.cuda.is_available()
                        else None,
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                del trainers
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
