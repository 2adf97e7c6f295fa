"""The interface every input encoding implements."""

from __future__ import annotations

import torch
from torch import nn


class EncodingError(ValueError):
    """An encoding configuration that cannot run here (a missing accelerator, an unsupported shape)."""


class Encoding(nn.Module):
    """Maps (N, in_dim) inputs to (N, out_dim) features.

    Encodings whose output starts with the raw input (`includes_input = True`, channels
    0..in_dim-1 equal the input) let the SDF field apply the geometric (sphere) initialisation.
    Encodings with a schedule (coarse-to-fine frequencies or levels) implement `set_progress`, which the
    trainer calls through the model's callbacks before each step. Schedules are in fractions of the run,
    so a short and a long run both go through all of it.
    """

    in_dim: int
    out_dim: int
    includes_input: bool = False

    def set_progress(self, progress: float) -> None:
        """Update schedule-dependent state (coarse-to-fine windows) for a run that is `progress` (in [0, 1])
        of the way through. Default: nothing to do."""

    def schedule_key(self) -> tuple:
        """Schedule-dependent state held in Python (not in tensors), e.g. the number of active levels.

        A captured CUDA graph bakes such state in, so the model captures a new graph whenever this key
        changes. State kept in tensors updated in place (a coarse-to-fine window) needs no key.
        """
        return ()

    def finite_difference_step(self) -> float | None:
        """Step of the SDF field's finite-difference gradient suited to this encoding (None: no opinion).

        Grid encodings tie it to their finest active level (Neuralangelo); the field falls back to its
        configured step when this returns None.
        """
        return None

    def total_variation(self) -> torch.Tensor | None:
        """A smoothness regulariser of the encoding's own parameters (None: the encoding has none)."""
        return None

    def require_double_backward(self) -> None:
        """Called by a field that differentiates the encoding twice (analytic eikonal gradient).

        Encodings whose fast path is first-order only switch to a path that supports it or raise a
        clear error. Default: nothing to do (plain PyTorch is twice differentiable).
        """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
