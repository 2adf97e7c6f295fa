"""`benchmarks/summarize.py`: an `nsr batch` output's runs as RESULTS.md rows, dated and naming their card."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).parents[2] / "benchmarks" / "summarize.py"


def run(seed: int, chamfer: float | None, device: str, status: str = "ok") -> dict:
    return {
        "name": f"spot_hashgrid-fused_30s_seed{seed}", "scene": "spot", "preset": "hashgrid-fused",
        "variant": "", "budget": "30s", "seed": seed, "status": status, "error": "" if status == "ok" else "boom",
        "chamfer_pct": chamfer, "detail_chamfer_pct": None, "psnr_mask": 28.0, "it_per_s": 240.0,
        "steps": 7200, "device": device,
    }  # fmt: skip


def write_batch(folder: Path, day: datetime.datetime, runs: list[dict]) -> Path:
    folder.mkdir()
    started = day.replace(tzinfo=datetime.timezone.utc).timestamp()
    batch = {"started": started, "invocations": [{"started": started, "seconds": 100.0, "ran": len(runs)}]}
    (folder / "results.json").write_text(json.dumps({"batch": batch, "runs": runs}))
    return folder


def test_rows_are_dated_name_their_card_and_give_mean_min_max(tmp_path):
    night = write_batch(
        tmp_path / "a",
        datetime.datetime(2026, 12, 5, 23, 30),
        [run(0, 0.15, "NVIDIA H200"), run(1, 0.18, "NVIDIA H200"), run(2, None, "", status="failed")],
    )
    other = write_batch(
        tmp_path / "b", datetime.datetime(2026, 12, 6, 1, 0), [run(0, 0.2, "NVIDIA H100 80GB HBM3")]
    )
    out = subprocess.run(
        [sys.executable, str(TOOL), night, other], capture_output=True, text=True, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("| date | card | scene |")
    # the failed run counts against its row (2 of 3 seeds) and is listed
    assert "| 2026-12-05 | H200 | spot | hashgrid-fused | - | 30s | 2/3 | 0.165 (0.150-0.180) |" in out.stdout
    assert "| 2026-12-06 | H100 80GB HBM3 | spot | hashgrid-fused | - | 30s | 1/1 | 0.200 |" in out.stdout
    assert "failed: spot_hashgrid-fused_30s_seed2: boom" in out.stdout


def test_the_first_steps_seconds_get_a_column_where_the_runs_recorded_them(tmp_path):
    day = datetime.datetime(2026, 12, 7, 10, 0)
    old = write_batch(tmp_path / "old", day, [run(0, 0.15, "NVIDIA H100 80GB HBM3")])
    runs = [
        run(seed, 0.15, "NVIDIA H100 80GB HBM3") | {"setup_seconds": s} for seed, s in ((0, 19.0), (1, 3.0))
    ]
    new = write_batch(tmp_path / "new", day, runs)
    table = subprocess.run(
        [sys.executable, str(TOOL), old], capture_output=True, text=True, check=True
    ).stdout
    assert "first step" not in table  # results written before the column existed
    table = subprocess.run(
        [sys.executable, str(TOOL), new], capture_output=True, text=True, check=True
    ).stdout
    assert table.splitlines()[0].endswith("| first step (s) |")
    assert table.splitlines()[2].endswith("| 11.0 (3.0-19.0) |")
    # runs of one scene and budget that paid different compiles inside their budgets are flagged
    assert (
        "note: spot at 30s (2026-12-07): first steps from 3.0 s (spot_hashgrid-fused_30s_seed1) to 19.0 s "
        "(spot_hashgrid-fused_30s_seed0)" in table
    )
    even = [
        run(seed, 0.15, "NVIDIA H100 80GB HBM3") | {"setup_seconds": s} for seed, s in ((0, 1.5), (1, 0.1))
    ]
    table = subprocess.run(
        [sys.executable, str(TOOL), write_batch(tmp_path / "even", day, even)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "note:" not in table
