"""Run `benchmarks/baseline.py` for several presets at once, one process per GPU, and tabulate them.

Each preset trains alone on its GPU (presets beyond the number of GPUs wait for a free one), so the
wall-clock budgets are honest. Results: OUT/<preset>/results.json, OUT/table.md, OUT/results.json.

    python benchmarks/compare_presets.py --presets positional hashgrid nffb --gpus 0 1 2 \
        --out /tmp/cmp -- --scene .data/synthetic_spot_mitsuba --gt-mesh .data/meshes/spot_cow/cow.obj \
        --background 1 1 1 --budgets 120 300
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_all(presets: list[str], gpus: list[str], out: Path, extra: list[str]) -> None:
    pending = list(presets)
    running: dict[str, tuple[str, subprocess.Popen]] = {}
    while pending or running:
        free = [g for g in gpus if g not in running]
        while pending and free:
            gpu, preset = free.pop(0), pending.pop(0)
            (out / preset).mkdir(parents=True, exist_ok=True)
            log = open(out / preset / "log.txt", "w")  # noqa: SIM115 - closed with the process
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu, PYTHONUNBUFFERED="1")
            cmd = [sys.executable, str(HERE / "baseline.py"), "--preset", preset, "--out", str(out / preset)]
            proc = subprocess.Popen(cmd + extra, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[gpu] = (preset, proc)
            print(f"started {preset} on GPU {gpu}", flush=True)
        time.sleep(2)
        for gpu, (preset, proc) in list(running.items()):
            if proc.poll() is not None:
                print(f"finished {preset} (exit {proc.returncode})", flush=True)
                del running[gpu]


def table(presets: list[str], out: Path) -> str:
    rows = []
    for preset in presets:
        path = out / preset / "results.json"
        if not path.is_file():
            tail = (out / preset / "log.txt").read_text().strip().splitlines()[-3:]
            rows.append({"preset": preset, "error": " | ".join(tail)})
            continue
        rows.extend(json.loads(path.read_text()))
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "| preset | budget | steps | it/s | Chamfer (rel) | F-score | PSNR image / mask (held-out) | GPU mem |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['preset']} | failed: {r['error'][:200]} | | | | | | |")
            continue
        chamfer = f"{100 * r['chamfer_rel']:.3f}%" if "chamfer_rel" in r else "-"
        fscore = f"{r['fscore']:.3f}" if "fscore" in r else "-"
        lines.append(
            f"| {r['preset']} | {r['budget_s']:.0f} s | {r['steps']} | {r['it_per_s']:.1f} | {chamfer} | {fscore} "
            f"| {r['psnr']:.2f} / {r['psnr_mask']:.2f} dB | {r['peak_gpu_mem_gib']:.2f} GiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", required=True)
    parser.add_argument("--gpus", nargs="+", default=["0"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then arguments for baseline.py")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    args.out.mkdir(parents=True, exist_ok=True)
    run_all(args.presets, args.gpus, args.out, extra)
    text = table(args.presets, args.out)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
