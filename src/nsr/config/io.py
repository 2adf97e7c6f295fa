"""Configs as plain data: dataclasses <-> dicts <-> YAML, loaded with a safe loader.

Union-typed fields (e.g. the encoding) are told apart by their `kind` field. Unknown keys are an
error that names the key, so a stale run folder fails with a clear message instead of silently
using defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from nsr.atomic import atomic_write

T = TypeVar("T")
SCHEMA_VERSION = 2
"""Version 2: schedules in fractions of the run (version 1 had them in steps) and a `kind` on the model."""

MIGRATIONS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""(config kind, schema version) -> a function turning such a config's plain data into the next version's.
A version without an entry for a kind needs no change for it."""


class ConfigError(ValueError):
    """A saved config that does not match the current code."""


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict/list/str/float data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _kind_of(cls: type) -> str | None:
    for f in dataclasses.fields(cls):
        if f.name == "kind":
            return f.default
    return None


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        classes = [a for a in options if dataclasses.is_dataclass(a)]
        if classes and isinstance(value, dict):
            kind = value.get("kind")
            for cls in classes:
                if _kind_of(cls) == kind:
                    return from_dict(cls, value, where)
            raise ConfigError(
                f"{where}: unknown kind {kind!r} (expected one of {[_kind_of(c) for c in classes]})"
            )
        return _convert(options[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {get_args(tp)}")
        return value
    if origin is tuple:
        args = get_args(tp)
        inner = args[0] if args else Any
        return tuple(_convert(inner, v, where) for v in value)
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return [_convert(inner, v, where) for v in value]
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Plain dict -> dataclass `cls`, recursively; missing keys take their defaults."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} for {cls.__name__}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def save_yaml(config: Any, path: str | Path, kind: str) -> None:
    """Write a config as plain YAML with a kind key and schema version (atomically)."""
    text = yaml.safe_dump(config_payload(config, kind), sort_keys=False)
    atomic_write(path, lambda file: file.write(text.encode()))


def load_yaml(cls: type[T], path: str | Path, kind: str) -> T:
    """Read a config written by `save_yaml`, checking its kind and schema version."""
    path = Path(path)
    try:
        payload = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read config ({err})") from None
    return config_from_payload(cls, payload, kind, str(path))


def config_payload(config: Any, kind: str) -> dict[str, Any]:
    """A config as the plain data `save_yaml` writes: {kind, schema_version, config}."""
    return {"kind": kind, "schema_version": SCHEMA_VERSION, "config": to_dict(config)}


def config_from_payload(cls: type[T], payload: Any, kind: str, where: str = "config") -> T:
    """A config from the plain data `config_payload` gives (a YAML file's, or a checkpoint's), checking its
    kind and schema version and migrating older versions."""
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        raise ConfigError(f"{where}: not an NSR {kind} config")
    version = payload.get("schema_version")
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ConfigError(f"{where}: schema version {version} (this NSR reads 1 to {SCHEMA_VERSION})")
    data = copy.deepcopy(payload["config"])
    try:
        for old in range(version, SCHEMA_VERSION):
            if (kind, old) in MIGRATIONS:
                data = MIGRATIONS[(kind, old)](data)
        return from_dict(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


__all__ = [
    "ConfigError",
    "config_from_payload",
    "config_payload",
    "from_dict",
    "load_yaml",
    "save_yaml",
    "to_dict",
]
