"""Range checks of config values, reported as one line naming the flag, the value and what is allowed.

Every config dataclass may define `validate()`, checking its own fields (not its nested configs) with
the helpers below; `validate_config` walks a whole config tree, first refusing any float that is not
finite, then calling each `validate()`, and names a bad value by its full dotted path as the command
line spells it (`--model.sdf.hidden-dim 0: must be a positive integer`). It is called once, before
any work starts (`nsr train` validates the config it is about to run, resumed runs included).

This module is a leaf (no NSR imports), so configs of every layer (encodings, fields, renderers,
models, the training config, command-line arguments) can use it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any


class InvalidValue(ValueError):
    """A config or command-line value outside what is allowed: `--NAME VALUE: ALLOWED`."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        self.name = name
        """The field, dotted from the root of the config (`model.sdf.hidden_dim`)."""
        self.value = value
        self.allowed = allowed
        """What the value must be, as a phrase (`must be a positive integer`)."""
        super().__init__(f"{flag(name)} {_show(value)}: {allowed}")

    def within(self, prefix: str) -> InvalidValue:
        """The same error for the field seen from the config that holds this one under `prefix`."""
        if not prefix:
            return self
        return InvalidValue(f"{prefix}.{self.name}", self.value, self.allowed)


def flag(name: str) -> str:
    """A dotted field name as a command-line flag: `model.sdf.hidden_dim` -> `--model.sdf.hidden-dim`."""
    return "--" + name.replace("_", "-")


def _show(value: Any) -> str:
    """A value as it would be typed (`-1` rather than `-1.0`)."""
    if isinstance(value, tuple | list):
        return " ".join(_show(v) for v in value) or "()"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def finite(name: str, value: float) -> None:
    """A finite number (no NaN, no infinity)."""
    if not _is_number(value) or not math.isfinite(value):
        raise InvalidValue(name, value, "must be a finite number")


def positive(name: str, value: float) -> None:
    """A finite number > 0 (an integer field: an integer >= 1)."""
    finite(name, value)
    if value <= 0:
        raise InvalidValue(name, value, "must be a positive integer" if _is_int(value) else "must be > 0")


def non_negative(name: str, value: float, zero: str = "") -> None:
    """A finite number >= 0; `zero` says what 0 means (`0 = off`), for the message."""
    finite(name, value)
    if value < 0:
        kind = "an integer >= 0" if _is_int(value) else ">= 0"
        raise InvalidValue(name, value, f"must be {kind}" + (f" ({zero})" if zero else ""))


def at_least(name: str, value: float, low: float, why: str = "") -> None:
    """A finite number >= `low`."""
    finite(name, value)
    if value < low:
        raise InvalidValue(name, value, f"must be >= {low:g}" + (f" ({why})" if why else ""))


def in_range(name: str, value: float, low: float, high: float, why: str = "") -> None:
    """A finite number in [low, high]."""
    finite(name, value)
    if not low <= value <= high:
        raise InvalidValue(
            name, value, f"must be between {low:g} and {high:g}" + (f" ({why})" if why else "")
        )


def fraction(name: str, value: float) -> None:
    """A fraction of the run, in [0, 1]."""
    in_range(name, value, 0.0, 1.0, "a fraction of the run")


def fractions(name: str, values: Iterable[float]) -> None:
    """Fractions of the run, each in [0, 1]."""
    values = tuple(values)
    for value in values:
        if not _is_number(value) or not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidValue(name, values, "must be fractions of the run, each between 0 and 1")


def one_of(name: str, value: Any, choices: Iterable[Any]) -> None:
    """One of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise InvalidValue(name, value, f"must be one of {', '.join(map(str, choices))}")


def device(name: str, value: str) -> None:
    """A torch device that exists here: `auto`, `cpu`, `cuda`, `cuda:N` (N below the GPU count), `mps`."""
    resolve_device(value, name)


def resolve_device(value: str, name: str = "device"):
    """`auto` -> CUDA when available, else CPU; any other name is checked to exist on this machine.

    Raises:
        InvalidValue: an unknown device name, CUDA (or a GPU index) that this machine does not have.
    """
    import torch

    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise InvalidValue(name, value, "must be auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidValue(
                name, value, "CUDA is not available on this machine (use --device cpu or auto)"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InvalidValue(name, value, f"this machine has {count} GPU(s): cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise InvalidValue(name, value, "MPS is not available on this machine")
    elif dev.type != "cpu":
        raise InvalidValue(name, value, "must be auto, cpu, cuda or cuda:N")
    return dev


def validate_config(config: Any, prefix: str = "") -> None:
    """Check a config tree: every float field finite, then each dataclass's own `validate()`.

    Raises:
        InvalidValue: naming the first bad field by its dotted path from the root (with `prefix`).
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        name = f"{prefix}.{f.name}" if prefix else f.name
        if isinstance(value, float):
            finite(name, value)
        elif isinstance(value, tuple | list) and any(isinstance(v, float) for v in value):
            if not all(math.isfinite(v) for v in value if isinstance(v, float)):
                raise InvalidValue(name, value, "must be finite numbers")
        elif dataclasses.is_dataclass(value):
            validate_config(value, name)
    own = getattr(config, "validate", None)
    if callable(own):
        try:
            own()
        except InvalidValue as err:
            raise err.within(prefix) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


__all__ = [
    "InvalidValue",
    "at_least",
    "device",
    "finite",
    "flag",
    "fraction",
    "fractions",
    "in_range",
    "non_negative",
    "one_of",
    "positive",
    "resolve_device",
    "validate_config",
]
