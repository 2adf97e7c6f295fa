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


def write_batch(folder: Path, day: datetime.datetime, runs: list[dict], backend: str = "in-process") -> Path:
    folder.mkdir()
    started = day.replace(tzinfo=datetime.timezone.utc).timestamp()
    invocation = {"started": started, "seconds": 100.0, "ran": len(runs), "backend": backend}
    batch = {"started": started, "invocations": [invocation]}
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


def test_the_budget_bars_say_monotone_and_ahead_from_the_means_over_seeds(tmp_path):
    def at(
        preset: str, seconds: int, seed: int, chamfer: float, scene: str = "spot", status: str = "ok"
    ) -> dict:
        budget = f"{seconds}s"
        return run(seed, chamfer, "NVIDIA H100 80GB HBM3", status) | {
            "name": f"{scene}_{preset}_{budget}_seed{seed}", "scene": scene, "preset": preset, "budget": budget,
        }  # fmt: skip

    day = datetime.datetime(2026, 12, 7, 10, 0)
    first = write_batch(
        tmp_path / "first",
        day,
        [
            # the bank: 0.20 -> 0.16 -> 0.14 (means of two seeds), better than positional at both shared budgets
            at("nffb-fused", 30, 0, 0.19), at("nffb-fused", 30, 1, 0.21),
            at("nffb-fused", 60, 0, 0.15), at("nffb-fused", 60, 1, 0.17),
            at("positional", 30, 0, 0.40), at("positional", 60, 0, 0.30),
            # the grid gets worse from 60 to 120 s on the mean, not on its best seed; a failed run does not count
            at("hashgrid-fused", 60, 0, 0.10), at("hashgrid-fused", 120, 0, 0.09), at("hashgrid-fused", 120, 1, 0.13),
            at("hashgrid-fused", 120, 2, 0.01, status="failed"),
            # a run at a step budget is not a time budget
            at("nffb-fused", 60, 2, 0.50) | {"budget": "5000steps-60s"},
        ],
    )  # fmt: skip
    # a later output adds the bank's 120 s runs (outputs and dates are pooled), two a GPU under Ray
    packed = "ray (1 GPUs, 16 CPUs; 0.5 GPU, 8 CPU per run, 3 retries)"
    later = write_batch(tmp_path / "later", day, [at("nffb-fused", 120, 0, 0.14)], backend=packed)
    table = subprocess.run(
        [sys.executable, str(TOOL), first, later, "--bars", "--against", "positional", "hashgrid-fused"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    bars = table[table.index("\n| scene | preset | variant |") + 1 :].splitlines()
    assert bars[0] == (
        "| scene | preset | variant | 30s: Chamfer % (seeds) | 60s: Chamfer % (seeds) | 120s: Chamfer % (seeds) "
        "| monotone | Chamfer / positional's at each budget | ahead of positional at every budget "
        "| Chamfer / hashgrid-fused's at each budget | ahead of hashgrid-fused at every budget |"
    )
    rows = {line.split(" | ")[1]: line for line in bars[2:]}
    assert rows["hashgrid-fused"] == (
        "| spot | hashgrid-fused | - | - | 0.100 (1) | 0.110 (2) | no: 120s 0.110 > 60s 0.100 | 60s 0.33x "
        "| yes (1 of 2 budgets) | - | - |"
    )
    assert rows["nffb-fused"] == (
        "| spot | nffb-fused | - | 0.200 (2) | 0.160 (2) | 0.140 (1, 2 a GPU) | yes | 30s 0.50x, 60s 0.53x "
        "| yes (2 of 3 budgets) | 60s 1.60x, 120s 1.27x | no (2 of 3 budgets) |"
    )
    # not against itself; against the grid where both were measured
    assert rows["positional"].endswith("| yes | - | - | 60s 3.00x | no (1 of 2 budgets) |")
    # --against without --bars is refused
    refused = subprocess.run(
        [sys.executable, str(TOOL), first, "--against", "positional"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--against is for --bars" in refused.stderr
