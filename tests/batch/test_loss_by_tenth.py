"""`benchmarks/loss_by_tenth.py`: a logged loss term tenth by tenth of each run, from run folders, logs and the
device runner's `.logs.tar.gz`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

TOOL = Path(__file__).parents[2] / "benchmarks" / "loss_by_tenth.py"


def log_lines(values: list[float]) -> str:
    rows = [{"step": i + 1, "eikonal": v, "rgb": 0.1} for i, v in enumerate(values)]
    rows.insert(3, {"step": 3, "val_psnr": 20.0})  # a validation line without the term is skipped
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def tool(*args) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_a_drift_shows_tenth_by_tenth_in_a_run_folder_and_a_tarball(tmp_path):
    # 20 logged steps: two a tenth; the loss jumps in the third tenth and falls back
    values = [0.04, 0.04, 0.03, 0.03, 0.20, 0.18, 0.10, 0.10] + [0.01] * 12
    run = tmp_path / "armadillo_bank"
    run.mkdir()
    (run / "train_log.jsonl").write_text(log_lines(values))
    lines = tool(run)
    assert (
        lines[2]
        == "| armadillo_bank | 0.040 / 0.030 / 0.190 / 0.100 / 0.010 / 0.010 / 0.010 / 0.010 / 0.010 / 0.010 |"
    )

    tarball = tmp_path / "batch.logs.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, text in [
            ("runs/b_seed1/train_log.jsonl", log_lines([0.5] * 10)),
            ("runs/a_seed0/train_log.jsonl", log_lines(values)),
        ]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    lines = tool(tarball, "--key", "rgb")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| a_seed0", "| b_seed1"]
    assert lines[3].endswith(" / ".join(["0.100"] * 10) + " |")


def test_a_folder_without_a_log_is_named(tmp_path):
    out = subprocess.run([sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode != 0 and f"{tmp_path / 'train_log.jsonl'}: no training log there" in out.stderr
