"""NSR: neural surface reconstruction (IDR-style SDF + appearance) with fast input encodings.

The Python API (`nsr.api`) is importable from here, lazily, so that `import nsr` stays cheap and has no
side effects: `nsr.load_scene`, `nsr.train`, `nsr.open_run`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = ("Scene", "TrainedRun", "load_scene", "open_run", "train")
"""Names served from `nsr.api` on first use."""

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("nsr.api"), name)
    raise AttributeError(f"module 'nsr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
