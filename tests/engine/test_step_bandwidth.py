"""`benchmarks/step_bandwidth.py`: Nsight Compute's report read into bytes and seconds per step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_benchmark

TOOL = Path(__file__).parents[2] / "benchmarks" / "step_bandwidth.py"


def load_tool():
    return load_benchmark("step_bandwidth")


REPORT = """==PROF== Connected to process 4242 (/usr/bin/python3)
==PROF== Profiling "graph" - 0: 0%....50%....100% - 1 pass
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Section Name","Metric Name","Metric Unit","Metric Value"
"0","4242","python3","gpu","graph_0","1","7","Command line profiler metrics","dram__bytes_read.sum","Mbyte","1,500.5"
"0","4242","python3","gpu","graph_0","1","7","Command line profiler metrics","dram__bytes_write.sum","byte","499500000"
"0","4242","python3","gpu","graph_0","1","7","Command line profiler metrics","gpu__time_duration.sum","msecond","3.5"
"1","4242","python3","gpu","item_kernel","1","7","Command line profiler metrics","dram__bytes_read.sum","Kbyte","n/a"
"1","4242","python3","gpu","item_kernel","1","7","Command line profiler metrics","dram__bytes_write.sum","byte","0"
"1","4242","python3","gpu","item_kernel","1","7","Command line profiler metrics","gpu__time_duration.sum","usecond","500"
==PROF== Disconnected from process 4242
"""


def test_the_report_is_summed_per_step_in_bytes_and_seconds():
    tool = load_tool()
    rows = tool.parse_ncu_csv(REPORT)
    assert len(rows) == 5  # the "n/a" value is left out
    read = [r["value"] for r in rows if r["metric"] == "dram__bytes_read.sum"]
    assert read == [pytest.approx(1500.5e6)]
    # two steps profiled, 2.0 GB and 4 ms of GPU time in all; a step takes 5 ms on the wall clock
    out = tool.summarize(rows, steps=2, ms_per_step=5.0, peak_bytes_per_s=4e12)
    assert out["dram_gb_per_step"] == pytest.approx(1.0)
    assert out["gpu_ms_per_step"] == pytest.approx(2.0)
    assert out["busy"] == pytest.approx(0.4)
    assert out["workloads_per_step"] == 1
    assert out["tb_per_s_wall"] == pytest.approx(0.2)  # 1 GB in 5 ms
    assert out["tb_per_s_gpu"] == pytest.approx(0.5)  # 1 GB in 2 ms of GPU time
    assert out["bandwidth_fraction_wall"] == pytest.approx(0.05)
    assert out["bandwidth_fraction_gpu"] == pytest.approx(0.125)


def test_a_log_without_a_report_or_with_an_unknown_unit_is_an_error():
    tool = load_tool()
    with pytest.raises(ValueError, match="no ncu report"):
        tool.parse_ncu_csv("==PROF== ERROR: profiling is not supported on this device\n")
    with pytest.raises(ValueError, match="unknown ncu unit"):
        tool.parse_ncu_csv(REPORT.replace('"msecond"', '"furlong"'))


def test_the_counters_are_read_for_whole_graphs_with_warm_caches():
    command = load_tool().ncu_command("ncu", Path("log.csv"))
    flags = dict(zip(command[1::2], command[2::2]))
    assert flags["--graph-profiling"] == "graph"
    assert flags["--cache-control"] == "none" and flags["--clock-control"] == "none"
    assert flags["--profile-from-start"] == "off"
    assert "dram__bytes_write.sum" in flags["--metrics"]


def test_steps_are_timed_in_their_own_process_without_ncu(tiny_scene, tmp_path):
    out = tmp_path / "rows.json"
    small = ["device=cpu", "model.sdf.hidden_dim=48", "model.appearance.hidden_dim=32"]
    small += ["model.tracer.num_samples=16", "model.tracer.mask_samples=8"]
    command = [sys.executable, str(TOOL), "--scene", str(tiny_scene), "--presets", "demo", "--rays", "64"]
    command += ["--steps", "2", "--warmup", "1", "--profiled-steps", "1", "--no-ncu", "--json", str(out)]
    done = subprocess.run([*command, "--set", *small], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert row["preset"] == "demo" and row["device"] == "cpu" and row["ms_per_step"] > 0
    assert row["peak_bytes_per_s"] is None and "dram_gb_per_step" not in row


def test_without_nsight_compute_it_says_so():
    done = subprocess.run(
        [sys.executable, str(TOOL), "--scene", ".", "--ncu", "no-such-ncu-here"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "not found (Nsight Compute)" in done.stderr


def test_a_preset_that_fails_is_recorded_and_the_rest_still_run(tiny_scene, tmp_path):
    out = tmp_path / "rows.json"
    command = [sys.executable, str(TOOL), "--scene", str(tiny_scene), "--presets", "no-such-preset", "demo"]
    command += ["--rays", "64", "--steps", "1", "--warmup", "1", "--profiled-steps", "1", "--no-ncu"]
    command += ["--json", str(out), "--set", "device=cpu", "model.tracer.num_samples=16"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    failed, measured = json.loads(out.read_text())
    assert "no-such-preset: the profiled process failed" in failed["error"]
    assert measured["preset"] == "demo" and measured["ms_per_step"] > 0
