"""Checkpoints: written atomically, verified on load, self-describing, pruned.

A checkpoint `RUN/checkpoints/step_<N>.pt` is one `torch.save`d dict holding everything an exact resume
needs, once:

- `step`, `seconds`, `progress`: where the run was (steps done, training seconds, fraction of the run);
- `model`: the model's state dict (parameters and persistent buffers);
- `optimizer` (and `camera_optimizer` with trained cameras): Adam's moments and hyper-parameters;
- `schedule`, `health`, `pockets`, `cameras`: the state of the schedule record, the divergence monitor,
  the pocket fill and the trained cameras, when used;
- `rng`, `sampler_rng`: every random generator's state;
- `config`: the run's training config as plain data (`{kind, schema_version, config}`, as config.yaml
  holds it), so a lost config.yaml is recovered from any checkpoint;
- `checksum`: sha256 of all of the above, checked on load (a file damaged after it was written is
  refused with a line, not deserialised into garbage).

`latest.pt` is a hard link to the newest step checkpoint of the run while it was healthy (no second
copy on disk; a copy where the file system has no hard links). Step checkpoints beyond the newest K are
deleted (`prune_step_checkpoints`); `latest.pt` and the `snapshot_<s>s.pt` files are kept.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nsr.atomic import atomic_write
from nsr.engine.errors import CheckpointError

log = logging.getLogger("nsr.engine")

LATEST = "latest.pt"
"""The run's newest healthy checkpoint, in RUN/checkpoints."""
STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
"""Step checkpoints: `step_0001000.pt`."""


def step_name(step: int) -> str:
    """The file name of the step checkpoint after `step` steps."""
    return f"step_{step:07d}.pt"


# ------------------------------------------------------------------------------------------ checksum
def payload_digest(payload: dict[str, Any]) -> str:
    """sha256 over the payload's content (every tensor's dtype, shape and bytes, every other value's
    repr), in its own order, the `checksum` key left out."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != "checksum"})
    return "sha256:" + digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, np.ndarray):
        digest.update(f"A{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        digest.update(b"{")
        for key, item in value.items():
            digest.update(repr(key).encode())
            _feed(digest, item)
        digest.update(b"}")
    elif isinstance(value, list | tuple):
        digest.update(b"[" if isinstance(value, list) else b"(")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


# ------------------------------------------------------------------------------------------ files
def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """torch.save `payload` with its checksum to a temporary file in the same folder, fsync, then rename:
    never a half-written file under `path`."""
    payload = {**payload, "checksum": payload_digest(payload)}
    return atomic_write(path, lambda file: torch.save(payload, file))


def link_latest(source: str | Path, latest: str | Path) -> Path:
    """Make `latest` the same file as `source`, atomically: a hard link renamed into place (a copy where
    the file system has no hard links)."""
    source, latest = Path(source), Path(latest)
    temp = latest.with_name(f".{latest.name}.{os.getpid()}.link.tmp")
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:  # no hard links here (some network or FUSE file systems): a full copy
        shutil.copyfile(source, temp)
    os.replace(temp, latest)
    return latest


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint written by `save_atomic` (trusted: written by NSR itself).

    Raises:
        CheckpointError: the file is missing, unreadable, truncated, not a checkpoint, or its content does
            not match its checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file (RuntimeError, EOFError, ...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(path, f"unreadable checkpoint (truncated or damaged: {reason[:120]})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(path, "not an NSR checkpoint")
    if "checksum" in state and payload_digest(state) != state["checksum"]:
        raise CheckpointError(path, "damaged checkpoint (its content does not match its checksum)")
    return state


def step_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """The step checkpoints in `folder`, (step, path), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = STEP_FILE.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def candidates(folder: str | Path) -> Iterator[Path]:
    """Checkpoints to resume from, best first: `latest.pt`, then the step checkpoints, newest first."""
    folder = Path(folder)
    if (folder / LATEST).is_file():
        yield folder / LATEST
    for _, path in reversed(step_checkpoints(folder)):
        yield path


def load_newest(folder: str | Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict, list[str]]:
    """The newest checkpoint of `folder` that loads and verifies: (path, state, problems of the newer
    ones that did not, one line each).

    Raises:
        CheckpointError: no checkpoint in `folder` loads (the problems of each are in the message).
    """
    problems: list[str] = []
    for path in candidates(folder):
        try:
            return path, load_checkpoint(path, map_location), problems
        except CheckpointError as err:
            problems.append(str(err))
    if not problems:
        raise CheckpointError(Path(folder) / LATEST, "checkpoint not found")
    raise CheckpointError(folder, "no checkpoint loads: " + "; ".join(problems))


def prune_step_checkpoints(folder: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step checkpoints (0 = keep all); returns the deleted paths.
    `latest.pt` is a link of its own, so deleting the step file it came from keeps it."""
    if keep <= 0:
        return []
    deleted = []
    for _, path in step_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)
        deleted.append(path)
    return deleted


SUPERSEDED = "superseded"
"""Sub-folder of RUN/checkpoints receiving step checkpoints of an abandoned continuation."""


def supersede_after(folder: str | Path, step: int) -> list[Path]:
    """Move the step checkpoints after `step` (a run that continues from `step`, or a diverged one) to
    `folder/superseded/`, so that the step files left describe one continuous run; returns their new
    paths."""
    moved = []
    for found, path in step_checkpoints(folder):
        if found > step:
            target = Path(folder) / SUPERSEDED / path.name
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            moved.append(target)
    return moved


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that a writer killed mid-write left in `folder` (`.<name>.*.tmp`);
    call only while owning the run folder (`nsr.engine.lock.RunLock`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


# ------------------------------------------------------------------------------------------ RNG
def rng_state() -> dict[str, Any]:
    """States of every global RNG (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_tensor(state: torch.Tensor) -> torch.Tensor:
    """A generator's saved state as the setters take it: a CPU byte tensor. A checkpoint loaded onto a GPU
    (`map_location`) brings its RNG states there too, which `torch.set_rng_state`,
    `torch.cuda.set_rng_state_all` and `Generator.set_state` refuse ("RNG state must be a torch.ByteTensor")."""
    return state.detach().to(device="cpu", dtype=torch.uint8)


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved, wherever the checkpoint was loaded to."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(rng_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng_tensor(s) for s in state["cuda"]])
