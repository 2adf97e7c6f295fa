"""Atomic checkpoints with everything needed to resume exactly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nsr.atomic import atomic_write


def save_atomic(payload: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file."""
    atomic_write(path, lambda file: torch.save(payload, file))


def rng_state() -> dict[str, Any]:
    """States of every global RNG (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_atomic` (trusted: written by NSR itself)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return torch.load(path, map_location=map_location, weights_only=False)
