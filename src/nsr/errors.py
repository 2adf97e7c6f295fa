"""NSR's own error types, in one tuple: what a user's input can cause (a missing file, a bad config, a
NaN loss), as opposed to a programming error.

The command line turns these into one line (`nsr.cli.common.friendly`); `nsr batch` reports a run that
fails with one of them by its message and goes on with the other runs. Everything else keeps its traceback.
"""

from __future__ import annotations

from nsr.atomic import OutputError
from nsr.cameras.refine import CameraConfigError
from nsr.checks import InvalidValue
from nsr.config.io import ConfigError
from nsr.data.download import DownloadError
from nsr.data.errors import DataError
from nsr.encodings import EncodingError
from nsr.engine.errors import RunError, TrainingError
from nsr.evaluation.antialias import AntialiasError
from nsr.fitting.fit_sdf import FitSDFError
from nsr.mesh.extract import MeshError
from nsr.metrics.dtu import DTUDataError
from nsr.metrics.lpips import LPIPSWeightsError
from nsr.models import ModelError

USER_ERRORS = (
    DataError,
    ConfigError,
    InvalidValue,
    OutputError,
    EncodingError,
    RunError,
    TrainingError,
    MeshError,
    FitSDFError,
    DownloadError,
    DTUDataError,
    LPIPSWeightsError,
    CameraConfigError,
    ModelError,
    AntialiasError,
)


def one_line(err: BaseException) -> str:
    """The message of a user error as `nsr: error: ...` shows it: its first line."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


__all__ = ["USER_ERRORS", "one_line"]
