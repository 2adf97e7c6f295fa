"""A logged loss term over a run, tenth by tenth: the mean of the logged steps in each tenth of each training
log, one row a run. Shows a drift (an eikonal loss that grows mid-run while the colour loss falls) at a glance.

    python benchmarks/loss_by_tenth.py RUN_OR_LOGS [...] [--key eikonal]

Each argument is a run folder (its `train_log.jsonl`), a training log itself, or a `.logs.tar.gz` that
benchmarks/device/untested.sh writes (every `runs/*/train_log.jsonl` in it).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path


def logs(path: Path) -> list[tuple[str, list[str]]]:
    """(run name, lines of its training log) for each log found at `path`."""
    if path.name.endswith(".tar.gz"):
        found = []
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith("train_log.jsonl"):
                    text = tar.extractfile(member).read().decode()
                    found.append((Path(member.name).parent.name, text.splitlines()))
        return sorted(found)
    log = path / "train_log.jsonl" if path.is_dir() else path
    if not log.is_file():
        raise SystemExit(f"{log}: no training log there")
    name = log.parent.name if log.name == "train_log.jsonl" else log.name.split(".")[0]
    return [(name, log.read_text().splitlines())]


def tenths(lines: list[str], key: str) -> list[float | None]:
    """Mean of `key` over the logged steps in each tenth of the log's lines that carry it."""
    values = [row[key] for row in map(json.loads, filter(None, lines)) if key in row]
    means = []
    for tenth in range(10):
        part = values[len(values) * tenth // 10 : len(values) * (tenth + 1) // 10]
        means.append(sum(part) / len(part) if part else None)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--key", default="eikonal", help="the logged term (default: eikonal)")
    args = parser.parse_args()
    print(f"| run | {args.key}, tenths 1-10 of the run |\n|---|---|")
    for path in args.paths:
        for name, lines in logs(path):
            row = " / ".join("-" if m is None else f"{m:.3f}" for m in tenths(lines, args.key))
            print(f"| {name} | {row} |")


if __name__ == "__main__":
    main()
