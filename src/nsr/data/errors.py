"""User-facing input errors."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A problem with an input file or folder, reported as one line naming the path and the problem."""

    def __init__(self, path: str | Path, problem: str, hint: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        message = f"{self.path}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)
