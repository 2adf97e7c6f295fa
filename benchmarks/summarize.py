"""Markdown tables of one or more `nsr batch` outputs: per (scene, preset, variant, budget), the mean, min and
max over seeds of Chamfer (% of the GT diagonal), held-out PSNR in the mask and it/s, and the camera errors
where cameras were trained, each row dated (UTC day the batch started) and naming its card, as
benchmarks/RESULTS.md keeps them; with `--by-batch`, one row per output folder (wall time, scenes per hour).

    python benchmarks/summarize.py OUT [OUT ...] [--by-batch]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from collections import defaultdict
from pathlib import Path


def load(out: Path) -> dict:
    path = out / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (is {out} an `nsr batch` output folder?)")
    return json.loads(path.read_text())


def spread(values: list, digits: int) -> str:
    """`mean (min-max)` of the values that exist, `-` when none does."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def largest(values: list, digits: int) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return f"{max(values):.{digits}f}" if values else "-"


def card(device: str | None) -> str:
    """A run's device as a table names it: "NVIDIA H200" -> "H200", "cpu" -> "CPU"."""
    if not device:
        return "-"
    return "CPU" if device == "cpu" else device.removeprefix("NVIDIA ").strip()


def batch_date(batch: dict) -> str:
    """The UTC day an `nsr batch` output's last invocation that ran something started (its first if none ran)."""
    worked = [i for i in batch.get("invocations", []) if i.get("ran")]
    started = worked[-1]["started"] if worked else batch.get("started")
    if started is None:
        return "-"
    return datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y-%m-%d")


def run_table(rows: list[dict]) -> str:
    """One row per (date, scene, preset, variant, budget): rows need `date` (`batch_date`); the card column
    names the devices of the row's finished runs."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[
            (row.get("date", "-"), row["scene"], row["preset"], row.get("variant", ""), row["budget"])
        ].append(row)
    cameras = any(r.get("rotation_deg_mean") is not None for r in rows)
    icp = any(r.get("chamfer_icp_pct") is not None for r in rows)
    setup = any(r.get("setup_seconds") is not None for r in rows)
    head = (
        "| date | card | scene | preset | variant | budget | seeds ok | Chamfer % | detail Chamfer % "
        "| PSNR mask (dB) | it/s | steps |"
    )
    rule = "|---|---|---|---|---|---|---|---|---|---|---|---|"
    if cameras:
        head += " rotation mean / max (deg) | centre mean / max (%) |"
        rule += "---|---|"
    if icp:
        head += " Chamfer after ICP % |"
        rule += "---|"
    if setup:
        head += " first step (s) |"
        rule += "---|"
    lines = [head, rule]
    for (date, scene, preset, variant, budget), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        device = ", ".join(sorted({card(r.get("device")) for r in ok})) or "-"
        line = (
            f"| {date} | {device} | {scene} | {preset} | {variant or '-'} | {budget} | {len(ok)}/{len(group)} "
            f"| {spread([r['chamfer_pct'] for r in ok], 3)} | {spread([r.get('detail_chamfer_pct') for r in ok], 3)} "
            f"| {spread([r['psnr_mask'] for r in ok], 2)} "
            f"| {spread([r['it_per_s'] for r in ok], 1)} | {spread([r['steps'] for r in ok], 0)} |"
        )
        if cameras:
            line += (
                f" {spread([r.get('rotation_deg_mean') for r in ok], 3)} / "
                f"{largest([r.get('rotation_deg_max') for r in ok], 3)} "
                f"| {spread([r.get('centre_pct_mean') for r in ok], 3)} / "
                f"{largest([r.get('centre_pct_max') for r in ok], 3)} |"
            )
        if icp:
            line += f" {spread([r.get('chamfer_icp_pct') for r in ok], 3)} |"
        if setup:
            line += f" {spread([r.get('setup_seconds') for r in ok], 1)} |"
        lines.append(line)
    failed = [r for r in rows if r["status"] != "ok"]
    lines += [f"\n{r['status']}: {r['name']}: {r['error']}" for r in failed]
    lines += [f"\n{note}" for note in setup_notes(rows)]
    return "\n".join(lines)


SETUP_SPREAD_SECONDS = 2.0
"""A spread of first steps above this among comparable runs is noted (`setup_notes`)."""


def setup_notes(rows: list[dict]) -> list[str]:
    """A note for each (date, scene, budget) whose finished runs' first steps (`setup_seconds`: the compiles a
    process pays, inside its budget) differ by more than SETUP_SPREAD_SECONDS: those runs are not compared on
    equal time (RESULTS.md section 4, "The cold compile inside the NeuS bank runs' budgets")."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok" and row.get("setup_seconds") is not None:
            groups[(row.get("date", "-"), row["scene"], row["budget"])].append(row)
    notes = []
    for (date, scene, budget), group in groups.items():
        low, high = (
            min(group, key=lambda r: r["setup_seconds"]),
            max(group, key=lambda r: r["setup_seconds"]),
        )
        if high["setup_seconds"] - low["setup_seconds"] > SETUP_SPREAD_SECONDS:
            notes.append(
                f"note: {scene} at {budget} ({date}): first steps from {low['setup_seconds']:.1f} s ({low['name']}) "
                f"to {high['setup_seconds']:.1f} s ({high['name']}), inside the budgets: some runs paid compiles "
                "the others did not (`warm_up: N` in the jobs file evens them; docs/batch.md)"
            )
    return notes


def batch_table(outs: list[Path], batches: list[dict]) -> str:
    lines = [
        "| output | how it ran | runs ok | wall (s) | runs per hour | Chamfer % over runs | it/s over runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for out, data in zip(outs, batches):
        info, rows = data["batch"], data["runs"]
        ok = [r for r in rows if r["status"] == "ok"]
        # Over the invocations that ran something (a long batch is resumed over several calls).
        worked = [i for i in info.get("invocations", []) if i.get("ran")]
        seconds = sum(i["seconds"] for i in worked)
        ran = sum(i["ran"] for i in worked)
        how = worked[-1]["backend"] if worked else info.get("backend", "")
        rate = f"{3600 * ran / seconds:.1f}" if seconds > 0 else "-"
        lines.append(
            f"| {out} | {how} | {len(ok)}/{len(rows)} | {seconds:.0f} | {rate} "
            f"| {spread([r['chamfer_pct'] for r in ok], 3)} | {spread([r['it_per_s'] for r in ok], 1)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("outs", type=Path, nargs="+", help="`nsr batch` output folders")
    parser.add_argument(
        "--by-batch", action="store_true", help="also one row per output folder: wall time, scenes per hour"
    )
    args = parser.parse_args()
    batches = [load(out) for out in args.outs]
    if args.by_batch:
        print(batch_table(args.outs, batches) + "\n")
    print(run_table([{**row, "date": batch_date(data["batch"])} for data in batches for row in data["runs"]]))


if __name__ == "__main__":
    main()
