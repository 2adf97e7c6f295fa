"""Markdown tables of one or more `nsr batch` outputs: per (scene, preset, variant, budget), the mean, min and
max over seeds of Chamfer (% of the GT diagonal), held-out PSNR in the mask and it/s, and the camera errors
where cameras were trained, each row dated (UTC day the batch started) and naming its card, as
benchmarks/RESULTS.md keeps them; with `--by-batch`, one row per output folder (wall time, scenes per hour); with
`--bars`, the budget bars of issues 15 and 16 over time budgets (`30s`, `60s`, ...): per (scene, preset, variant)
the mean Chamfer at each budget, whether it never gets worse with a longer budget, and its ratio to the presets
named by `--against` at each budget (below 1: ahead of them).

    python benchmarks/summarize.py OUT [OUT ...] [--by-batch] [--bars [--against positional hashgrid-fused]]

OUT: an output folder or its results.json (a device call's copy, e.g. benchmarks/results/*/NAME.json).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import re
from collections import defaultdict
from pathlib import Path


def load(out: Path) -> dict:
    """An `nsr batch` output's table: OUT/results.json, or a copy of that file (as the device calls bring it back)."""
    path = out if out.is_file() else out / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (is {out} an `nsr batch` output folder or its results.json?)")
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


def worked(batch: dict) -> list[dict]:
    """An output's invocations that ran something (a long batch is resumed over several calls)."""
    return [i for i in batch.get("invocations", []) if i.get("ran")]


def last_worked(batch: dict) -> dict:
    """The last invocation that ran something, or the batch's own record where none did (its `started`, `backend`)."""
    runs = worked(batch)
    return runs[-1] if runs else batch


def batch_date(batch: dict) -> str:
    """The UTC day an `nsr batch` output's last invocation that ran something started (its first if none ran)."""
    started = last_worked(batch).get("started")
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


TIME_BUDGET = re.compile(r"^(\d+(?:\.\d+)?)s$")
"""A budget of training time alone, as `RunSpec.budget` writes it (`60s`; not `5000steps` or `5000steps-60s`)."""


def runs_a_gpu(batch: dict) -> float | None:
    """How many runs shared a GPU in an output's last invocation that ran something (`ray (1 GPUs, 16 CPUs; 0.5 GPU,
    8 CPU per run, ...)` -> 2), None where its backend does not say (in-process runs: one at a time)."""
    match = re.search(r"; ([\d.]+) GPU, ", last_worked(batch).get("backend") or "")
    return 1.0 / float(match.group(1)) if match and float(match.group(1)) > 0 else None


def budget_means(rows: list[dict]) -> dict[tuple, dict[float, list[dict]]]:
    """(scene, preset, variant) -> {seconds: its finished runs with a Chamfer at that time budget}, over every
    output and date given (runs at step budgets are left out)."""
    means: dict[tuple, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        match = TIME_BUDGET.match(str(row.get("budget", "")))
        chamfer = row.get("chamfer_pct")
        if row["status"] != "ok" or match is None or chamfer is None or not math.isfinite(chamfer):
            continue
        means[(row["scene"], row["preset"], row.get("variant", ""))][float(match.group(1))].append(row)
    return means


def monotone(budgets: dict[float, list[dict]]) -> str:
    """`yes` where the mean Chamfer at every budget is no worse than at the next shorter one measured, else the
    first budget where it got worse (`no: 120s 0.150 > 60s 0.140`); `-` with fewer than two budgets."""
    seconds = sorted(budgets)
    if len(seconds) < 2:
        return "-"
    for shorter, longer in itertools.pairwise(seconds):
        before, after = _mean(budgets[shorter]), _mean(budgets[longer])
        if after > before:
            return f"no: {longer:g}s {after:.3f} > {shorter:g}s {before:.3f}"
    return "yes"


def _mean(runs: list[dict]) -> float:
    return sum(r["chamfer_pct"] for r in runs) / len(runs)


def _cell(runs: list[dict]) -> str:
    """`mean (seeds)`, and how many runs shared a GPU where some did (their budgets bought fewer steps)."""
    shared = sorted({r["runs_a_gpu"] for r in runs if (r.get("runs_a_gpu") or 1) > 1})
    packed = ", " + " / ".join(f"{n:g}" for n in shared) + " a GPU" if shared else ""
    return f"{_mean(runs):.3f} ({len(runs)}{packed})"


def bars_table(rows: list[dict], against: list[str]) -> str:
    """The budget bars: one row per (scene, preset, variant) with the mean Chamfer % (seeds; runs a GPU where they
    shared one, from `runs_a_gpu` in the rows) at each time budget, `monotone`, and per preset in `against` the
    ratio of the means at each budget both were measured at (the same scene; the reference's runs without a
    variant) and whether it is below 1 at all of them."""
    means = budget_means(rows)
    seconds = sorted({s for budgets in means.values() for s in budgets})
    head = "| scene | preset | variant | " + " | ".join(f"{s:g}s: Chamfer % (seeds)" for s in seconds)
    head += " | monotone |" + "".join(
        f" Chamfer / {name}'s at each budget | ahead of {name} at every budget |" for name in against
    )
    lines = [head, "|" + "---|" * (4 + len(seconds) + 2 * len(against))]
    for (scene, preset, variant), budgets in sorted(means.items()):
        cells = [_cell(budgets[s]) if s in budgets else "-" for s in seconds]
        line = f"| {scene} | {preset} | {variant or '-'} | " + " | ".join(cells) + f" | {monotone(budgets)} |"
        for name in against:
            reference = means.get((scene, name, ""), {})
            shared = [s for s in sorted(budgets) if s in reference]
            if (name == preset and not variant) or not shared:
                line += " - | - |"
                continue
            ratios = [_mean(budgets[s]) / _mean(reference[s]) for s in shared]
            line += " " + ", ".join(f"{s:g}s {r:.2f}x" for s, r in zip(shared, ratios))
            line += f" | {'yes' if all(r < 1 for r in ratios) else 'no'} ({len(shared)} of {len(budgets)} budgets) |"
        lines.append(line)
    return "\n".join(lines)


def batch_table(outs: list[Path], batches: list[dict]) -> str:
    lines = [
        "| output | how it ran | runs ok | wall (s) | runs per hour | Chamfer % over runs | it/s over runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for out, data in zip(outs, batches):
        info, rows = data["batch"], data["runs"]
        ok = [r for r in rows if r["status"] == "ok"]
        seconds = sum(i["seconds"] for i in worked(info))
        ran = sum(i["ran"] for i in worked(info))
        how = last_worked(info).get("backend", "")
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
    parser.add_argument(
        "outs", type=Path, nargs="+", help="`nsr batch` output folders or their results.json files"
    )
    parser.add_argument(
        "--by-batch", action="store_true", help="also one row per output folder: wall time, scenes per hour"
    )
    parser.add_argument(
        "--bars",
        action="store_true",
        help="also the budget bars over time budgets: mean Chamfer per budget, monotone, ratios to --against",
    )
    parser.add_argument(
        "--against",
        nargs="*",
        default=[],
        metavar="PRESET",
        help="with --bars: presets to compare each one with",
    )
    args = parser.parse_args()
    if args.against and not args.bars:
        parser.error("--against is for --bars")
    batches = [load(out) for out in args.outs]
    rows = [
        {**row, "date": batch_date(data["batch"]), "runs_a_gpu": runs_a_gpu(data["batch"])}
        for data in batches
        for row in data["runs"]
    ]
    if args.by_batch:
        print(batch_table(args.outs, batches) + "\n")
    print(run_table(rows))
    if args.bars:
        print("\n" + bars_table(rows, args.against))


if __name__ == "__main__":
    main()
