"""The mesh package's error type (one line for the user through `nsr.cli.common.friendly`)."""

from __future__ import annotations


class MeshError(RuntimeError):
    """A mesh cannot be made or written as asked: no usable zero level set inside the extraction bounds, a
    degenerate one, or a file name or format that cannot be written."""
