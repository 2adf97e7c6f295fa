"""What can stop a run, as NSR's own error types (one line each on the command line)."""

from __future__ import annotations

from pathlib import Path


class RunError(Exception):
    """A run folder that is missing, incomplete, in use by another process, or cannot be continued as
    asked."""


class CheckpointError(RunError):
    """A checkpoint file that is missing, unreadable, damaged (checksum mismatch) or not NSR's."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TrainingError(RuntimeError):
    """Training cannot go on (the loss became NaN, the run diverged)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint (a KeyboardInterrupt, so that code
    catching `Exception` lets it through)."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path | None, run_dir: Path) -> None:
        self.signal_name = signal_name
        """`SIGINT` or `SIGTERM`."""
        self.step = step
        """Steps done when training stopped."""
        self.checkpoint = checkpoint
        """The checkpoint written on the way out (None when none could be written)."""
        self.run_dir = run_dir
        self.resume_command = f"nsr train --out {run_dir} --resume"
        """The command that continues the run (a command that trains for the user may say its own)."""
        saved = f"saved {checkpoint}" if checkpoint is not None else "no checkpoint saved"
        super().__init__(f"{signal_name} at step {step}: {saved}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it."""
        return 143 if self.signal_name == "SIGTERM" else 130


__all__ = ["CheckpointError", "RunError", "TrainingError", "TrainingInterrupted"]
