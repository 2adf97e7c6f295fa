"""Run `nsr fit-sdf` for every encoding on every reference mesh; write a markdown table and JSON.

    python benchmarks/fit_sdf.py --out bench/fit_sdf_cpu --device cpu --max-seconds 20 --threads 1
    python benchmarks/fit_sdf.py --out bench/fit_sdf_gpu --device cuda --max-seconds 60 --resolution 512

Meshes (from ../shared/data/meshes unless --data says otherwise): the Stanford bunny (a scan with
holes), the Armadillo (closed) and Spot (closed, UV seams). Encodings: every point encoding the
installed nsr offers (`--encodings` picks some). Each fit runs in its own process (a crash or an
out-of-memory in one encoding does not stop the others; GPU memory starts clean), with the same
ground-truth pool, computed once per mesh into `--cache` (default OUT/cache) before the fits: on a
machine without libigl, carry a cache computed elsewhere (same mesh files, same sampling options) or
let the exact torch backend compute it (fine on a GPU). Extra arguments after `--` go to every
`nsr fit-sdf` call (e.g. `-- --batch-size 8192 --eikonal-weight 0.1`).

Outputs in OUT: results.json (the fit-sdf reports, one per mesh x encoding, with `error` set for
fits that failed), results.md (the table), logs/<mesh>-<encoding>.log (each run's stderr). A later
call with the same OUT adds its rows (replacing reruns), so meshes can be run one call at a time:

    for m in bunny armadillo spot; do python benchmarks/fit_sdf.py --out OUT --meshes $m ...; done
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "meshes"
MESHES = {
    "bunny": "stanford_bunny/stanford-bunny.obj",
    "armadillo": "armadillo/armadillo.obj",
    "spot": "spot_cow/cow.obj",
}


def available_encodings() -> list[str]:
    """The point encodings of the nsr being benchmarked (asked in a subprocess: same env as the runs)."""
    code = "from nsr.fitting.fit_sdf import point_encodings; print(' '.join(point_encodings()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(None))
    if out.returncode != 0:
        sys.exit(f"cannot import nsr: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout.split()


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def fit_sdf(args: list[str], log: Path, threads: int | None, timeout: float | None) -> tuple[int, str]:
    """Run `nsr fit-sdf ARGS`; returns (exit code, stdout); stderr (bars, errors) goes to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "nsr.cli.main", "fit-sdf", *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=_env(threads),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return 124, ""
    return proc.returncode, proc.stdout


def last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("nsr: error:") or "Error" in line]
    return (errors or lines or ["no output"])[-1][-300:]


def markdown(rows: list[dict], header: str) -> str:
    """One row per mesh x encoding."""
    lines = [
        header,
        "",
        "| mesh | encoding | Chamfer (% diag) | Chamfer (mesh units) | IoU | F-score | steps | train s | params | network | backend |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.get("chamfer_rel") is None and row.get("iou") is None:
            lines.append(f"| {row['name']} | {row['encoding']} | failed: {row.get('error', '?')} |||||||||")
            continue
        chamfer_rel = "-" if row["chamfer_rel"] is None else f"{100 * row['chamfer_rel']:.3f}"
        chamfer = "-" if row["chamfer"] is None else f"{row['chamfer']:.3g}"
        fscore = "-" if row["fscore"] is None else f"{row['fscore']:.3f}"
        lines.append(
            f"| {row['name']} | {row['encoding']} | {chamfer_rel} | {chamfer} | {row['iou']:.4f} | {fscore} | "
            f"{row['steps']} | {row['seconds']:.1f} | {row['num_params']:,} | {row['network']} | {row['backend'] or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (results.json, results.md, logs/)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the reference meshes")
    parser.add_argument("--meshes", nargs="+", default=list(MESHES), choices=list(MESHES))
    parser.add_argument("--encodings", nargs="+", default=None, help="default: every available one")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="training budget per fit")
    parser.add_argument(
        "--steps", type=int, default=100000, help="step cap per fit (the time budget binds first)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: fit-sdf's (16384)")
    parser.add_argument("--resolution", type=int, default=256, help="marching-cubes resolution")
    parser.add_argument("--eval-samples", type=int, default=200000, help="surface samples for the Chamfer")
    parser.add_argument("--cache", type=Path, default=None, help="ground-truth cache (default OUT/cache)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for each run (CPU)")
    parser.add_argument(
        "--timeout", type=float, default=None, help="kill a single run after this many seconds"
    )
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then arguments for every fit-sdf call")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra

    encodings = args.encodings or available_encodings()
    cache = args.cache or args.out / "cache"
    common = ["--device", args.device, "--resolution", str(args.resolution)]
    common += ["--eval-samples", str(args.eval_samples), "--cache", str(cache), *extra]
    rows: list[dict] = []
    started = time.time()
    for name in args.meshes:
        mesh = args.data / MESHES[name]
        if not mesh.is_file():
            print(f"{name}: {mesh} not found, skipped", file=sys.stderr)
            continue
        code, _ = fit_sdf(
            [str(mesh), *common, "--prepare-only"], args.out / "logs" / f"{name}-gt.log", None, None
        )
        if code != 0:
            print(
                f"{name}: ground truth failed: {last_error(args.out / 'logs' / f'{name}-gt.log')}",
                file=sys.stderr,
            )
            continue
        for encoding in encodings:
            log = args.out / "logs" / f"{name}-{encoding}.log"
            run = [str(mesh), "--encoding", encoding, "--steps", str(args.steps)]
            run += ["--max-seconds", str(args.max_seconds), "--json", *common]
            if args.batch_size:
                run += ["--batch-size", str(args.batch_size)]
            code, stdout = fit_sdf(run, log, args.threads, args.timeout)
            try:
                row = json.loads(stdout.strip().splitlines()[-1]) if code == 0 else None
            except (json.JSONDecodeError, IndexError):
                row = None
            if row is None:
                row = {"encoding": encoding, "error": "timed out" if code == 124 else last_error(log)}
            row["name"] = name
            rows.append(row)
            summary = row.get("chamfer_rel")
            shown = (
                f"Chamfer {100 * summary:.3f}% IoU {row['iou']:.4f}"
                if summary is not None
                else row.get("error")
            )
            print(f"{name:<10} {encoding:<14} {shown}", file=sys.stderr, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    done = [row for row in rows if "extra" in row]
    device = done[0]["extra"].get("device_name", done[0]["device"]) if done else args.device
    torch_version = done[0]["extra"].get("torch", "?") if done else "?"
    command = " ".join(["python", "benchmarks/fit_sdf.py", *sys.argv[1:]])
    header = (
        f"`{command}`, {date}, {device}, torch {torch_version}, "
        f"{args.max_seconds:g} s of training per fit, marching cubes at {args.resolution}^3, "
        f"{args.eval_samples} Chamfer samples per mesh; total {time.time() - started:.0f} s."
    )
    headers, rows = merge_previous(args.out / "results.json", header, rows)
    text = markdown(rows, "\n\n".join(headers))
    (args.out / "results.json").write_text(json.dumps({"headers": headers, "rows": rows}, indent=1))
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


def merge_previous(path: Path, header: str, rows: list[dict]) -> tuple[list[str], list[dict]]:
    """Add this call's rows to those already in OUT/results.json (a rerun of a mesh x encoding
    replaces its row), so one mesh per call (e.g. under a per-command time limit) builds one table."""
    if not path.is_file():
        return [header], rows
    previous = json.loads(path.read_text())
    fresh = {(row["name"], row["encoding"]) for row in rows}
    kept = [row for row in previous.get("rows", []) if (row["name"], row["encoding"]) not in fresh]
    order = {name: i for i, name in enumerate(MESHES)}
    merged = sorted(kept + rows, key=lambda row: order.get(row["name"], len(order)))
    return [*previous.get("headers", []), header], merged


if __name__ == "__main__":
    sys.exit(main())
