"""How much of the GPU's memory bandwidth a training step uses, and how busy the GPU is, from its counters.

    python benchmarks/step_bandwidth.py --scene .data/synthetic_spot_mitsuba \
        --presets hashgrid-fused nffb-fused --json out.json          # on the GPU machine (Nsight Compute)
    python benchmarks/step_bandwidth.py --scene ... --presets demo --no-ncu    # timing only, CPU too

For every preset the steps run twice in one process started under Nsight Compute (`ncu`): `--steps` steps
timed on the wall clock as `profile_step.py` does (after `--warmup` steps, which also capture the step's CUDA
graph), then `--profiled-steps` steps between cudaProfilerStart and Stop, which `ncu` measures with the
GPU's hardware counters: `dram__bytes_read.sum` and `dram__bytes_write.sum` (bytes between the L2 cache and
the HBM) and `gpu__time_duration.sum`. A captured step is measured as one workload
(`--graph-profiling graph`), caches stay warm between workloads (`--cache-control none`: the default
flushes L2 before each one, which would count re-reads a real step gets from L2) and the clocks are left
alone (`--clock-control none`, as the device notes ask).

Per step it reports the DRAM bytes, the GPU time (the workloads' durations summed: how long the GPU computes
in a step, against the step's wall time: `busy`), and the fraction of the peak bandwidth the step reaches,
over its wall time and over its GPU time. The peak is measured on the same GPU in the same process: a
1 GiB device-to-device copy, bytes read plus bytes written over its time. `ncu` serialises the
workloads it measures, so a profiled step is slower than a timed one; the bytes and durations are the
workloads' own.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRICS = ("dram__bytes_read.sum", "dram__bytes_write.sum", "gpu__time_duration.sum")
"""What `ncu` reads for every workload (kernel, or whole CUDA graph)."""

UNITS = {
    "byte": 1.0,
    "Kbyte": 1e3,
    "Mbyte": 1e6,
    "Gbyte": 1e9,
    "Tbyte": 1e12,
    "nsecond": 1e-9,
    "ns": 1e-9,
    "usecond": 1e-6,
    "us": 1e-6,
    "msecond": 1e-3,
    "ms": 1e-3,
    "second": 1.0,
    "s": 1.0,
}
"""`ncu`'s units to bytes and seconds (it scales to decimal multiples unless `--print-units base`)."""

MARK = "STEP_BANDWIDTH "
"""Prefix of the line the profiled process prints its timing on (its other output is the trainer's)."""


def ncu_command(ncu: str, log: Path) -> list[str]:
    """The `ncu` prefix: the counters of every kernel and whole graph between cudaProfilerStart and Stop."""
    return [
        ncu,
        "--profile-from-start", "off",
        "--graph-profiling", "graph",
        "--cache-control", "none",
        "--clock-control", "none",
        "--metrics", ",".join(METRICS),
        "--csv",
        "--print-units", "base",
        "--log-file", str(log),
    ]  # fmt: skip


def parse_ncu_csv(text: str) -> list[dict]:
    """The rows of `ncu --csv`'s report (long form: one row a workload and metric), values in bytes and
    seconds: {"id", "name", "metric", "value"}. Lines before the header (`==PROF==` messages) are skipped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if '"Metric Name"' in line), None)
    if start is None:
        raise ValueError('no ncu report in the log (no line with the column "Metric Name")')
    body = [line for line in lines[start:] if line.startswith('"')]
    rows = []
    for row in csv.DictReader(body):
        unit = row.get("Metric Unit", "")
        raw = (row.get("Metric Value") or "").replace(",", "")
        try:
            value = float(raw)
        except ValueError:
            continue  # "n/a" for a metric the workload has none of
        if unit not in UNITS:
            raise ValueError(f"unknown ncu unit {unit!r} of {row.get('Metric Name')}")
        name = row.get("Kernel Name") or row.get("Graph Name") or ""
        rows.append(
            {
                "id": row.get("ID", ""),
                "name": name,
                "metric": row["Metric Name"],
                "value": value * UNITS[unit],
            }
        )
    return rows


def summarize(rows: list[dict], steps: int, ms_per_step: float, peak_bytes_per_s: float | None) -> dict:
    """Per step: DRAM bytes, GPU time, busy fraction and the bandwidth fractions (over wall and GPU time)."""
    total = {metric: 0.0 for metric in METRICS}
    for row in rows:
        if row["metric"] in total:
            total[row["metric"]] += row["value"]
    workloads = len({row["id"] for row in rows})
    nbytes = (total["dram__bytes_read.sum"] + total["dram__bytes_write.sum"]) / steps
    gpu_s = total["gpu__time_duration.sum"] / steps
    wall_s = ms_per_step / 1000
    out = {
        "workloads_per_step": workloads / steps,
        "dram_gb_per_step": nbytes / 1e9,
        "dram_read_gb_per_step": total["dram__bytes_read.sum"] / steps / 1e9,
        "gpu_ms_per_step": gpu_s * 1000,
        "busy": gpu_s / wall_s if wall_s > 0 else None,
        "tb_per_s_wall": nbytes / wall_s / 1e12 if wall_s > 0 else None,
        "tb_per_s_gpu": nbytes / gpu_s / 1e12 if gpu_s > 0 else None,
        "peak_tb_per_s": peak_bytes_per_s / 1e12 if peak_bytes_per_s else None,
    }
    if peak_bytes_per_s:
        out["bandwidth_fraction_wall"] = out["tb_per_s_wall"] * 1e12 / peak_bytes_per_s
        if out["tb_per_s_gpu"] is not None:
            out["bandwidth_fraction_gpu"] = out["tb_per_s_gpu"] * 1e12 / peak_bytes_per_s
    return out


def copy_bandwidth(nbytes: int = 1 << 30, repeats: int = 10) -> float | None:
    """Bytes read plus written per second by a device-to-device copy of `nbytes` (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    del src, dst
    torch.cuda.empty_cache()
    return 2 * nbytes / seconds


def run_steps(args: argparse.Namespace, preset: str) -> dict:
    """In the profiled process: time `--steps` steps, then run `--profiled-steps` inside the profiler's range."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from profile_step import make_trainer, sync, time_steps

    from nsr.data.idr import load_idr_scene

    scene = load_idr_scene(args.scene)
    peak = copy_bandwidth()
    trainer = make_trainer(preset, scene, args.rays, "preset", args.set)
    ms, _ = time_steps(trainer, args.steps, args.warmup)
    graphed = getattr(trainer, "graphed_step", None) is not None
    if torch.cuda.is_available():
        torch.cuda.profiler.start()
    for _ in range(args.profiled_steps):
        trainer.train_step()
    sync()
    if torch.cuda.is_available():
        torch.cuda.profiler.stop()
    return {
        "preset": preset,
        "set": args.set,
        "rays": args.rays,
        "ms_per_step": round(ms, 3),
        "rays_per_s": round(args.rays * 1000 / ms),
        "graphed": graphed,
        "profiled_steps": args.profiled_steps,
        "peak_bytes_per_s": peak,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }


def measure(args: argparse.Namespace, preset: str) -> dict:
    """One preset in its own process, under `ncu` unless `--no-ncu`; the timing and the counters together."""
    inner = [sys.executable, __file__, "--inner", "--scene", str(args.scene), "--presets", preset]
    inner += ["--rays", str(args.rays), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    inner += ["--profiled-steps", str(args.profiled_steps)] + (["--set", *args.set] if args.set else [])
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "ncu.csv"
        command = inner if args.no_ncu else ncu_command(args.ncu, log) + inner
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        if done.returncode != 0 or not lines:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise RuntimeError(f"{preset}: the profiled process failed (exit {done.returncode}):\n{tail}")
        row = json.loads(lines[-1][len(MARK) :])
        if not args.no_ncu:
            if args.keep_csv:
                shutil.copy(log, args.keep_csv.with_suffix(f".{preset}.csv"))
            text = log.read_text() if log.exists() else ""
            try:
                counters = parse_ncu_csv(text)
            except ValueError as error:
                tail = "\n".join(text.splitlines()[-10:])
                raise RuntimeError(f"{preset}: {error}; ncu's log ends:\n{tail}") from error
            row.update(
                summarize(counters, row["profiled_steps"], row["ms_per_step"], row["peak_bytes_per_s"])
            )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--presets", nargs="+", default=["hashgrid-fused"])
    parser.add_argument("--rays", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed steps first (compilation, graph capture)"
    )
    parser.add_argument("--profiled-steps", type=int, default=3, help="steps measured by the counters")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument(
        "--ncu", default=os.environ.get("NCU", "ncu"), help="Nsight Compute's command line tool"
    )
    parser.add_argument("--no-ncu", action="store_true", help="timing only (no counters), e.g. on a CPU")
    parser.add_argument("--timeout", type=float, default=540, help="seconds for one preset's process")
    parser.add_argument("--keep-csv", type=Path, help="also keep ncu's report as PATH.<preset>.csv")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        for preset in args.presets:
            print(MARK + json.dumps(run_steps(args, preset)), flush=True)
        return
    if not args.no_ncu and shutil.which(args.ncu) is None:
        sys.exit(f"step_bandwidth: {args.ncu!r} not found (Nsight Compute); --no-ncu times the steps only")
    rows = []
    for preset in args.presets:
        try:
            row = measure(args, preset)
        except (RuntimeError, subprocess.TimeoutExpired) as error:  # the next preset may still be measured
            row = {"preset": preset, "error": str(error)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
