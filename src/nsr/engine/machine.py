"""What a run trained on: RUN/machine.json, one entry per training session (a resumed run adds one), read
by reports ("trained on an NVIDIA H200", it/s meaning something only with the card beside it)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from nsr.atomic import atomic_write

MACHINE_FILE = "machine.json"


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else `platform.processor()`), or `CPU`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def describe_device(device: torch.device | str) -> dict:
    """`{"device", "name", "threads", "torch"}` of the device a run computes on (the card's name on CUDA,
    the CPU's otherwise, and torch's CPU threads)."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name()
    return {
        "device": str(device),
        "name": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def record_machine(run_dir: str | Path, device: torch.device | str, step: int) -> Path:
    """Append this training session (starting at `step`) to RUN/machine.json."""
    path = Path(run_dir) / MACHINE_FILE
    sessions = read_machines(run_dir)
    sessions.append({"from_step": step, **describe_device(device)})
    text = json.dumps(sessions, indent=1)
    return atomic_write(path, lambda f: f.write(text.encode()))


def read_machines(run_dir: str | Path) -> list[dict]:
    """The training sessions recorded in RUN/machine.json (empty when there is none or it is unreadable)."""
    path = Path(run_dir) / MACHINE_FILE
    try:
        sessions = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return sessions if isinstance(sessions, list) else []
