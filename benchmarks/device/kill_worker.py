"""Kill one worker of a running `nsr batch` (the fault-tolerance check on a GPU host): wait until a run of
OUT has written its first checkpoint while its worker is alive, SIGKILL that worker's process, and say which.
Ray restarts the run, which resumes from the checkpoint (OUT/results.csv: `attempt` 2, `resumed_from_step`).

    python benchmarks/device/kill_worker.py OUT [--timeout 300]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        for run in sorted((args.out / "runs").glob("*")):
            info_path = run / "batch_worker.json"
            if (run / "batch_result.json").exists() or not info_path.is_file():
                continue
            if not (run / "checkpoints" / "latest.pt").is_file():
                continue
            info = json.loads(info_path.read_text())
            try:
                os.kill(info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                continue
            print(
                f"killed the worker of {run.name} (pid {info['pid']}, attempt {info['attempt']})", flush=True
            )
            return
        time.sleep(0.5)
    raise SystemExit(f"no running run with a checkpoint in {args.out} within {args.timeout:.0f} s")


if __name__ == "__main__":
    main()
