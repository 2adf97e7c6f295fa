"""Switching a union-typed config field (e.g. an encoding) to another kind from the command line.

tyro would turn every union of dataclasses into a subcommand, so that overriding a nested field of the
preset's choice (`--model.sdf.encoding.num-levels 8`) would first need the subcommand to be named. NSR
parses with `tyro.conf.AvoidSubcommands` instead: a union field shows the fields of the preset's kind.
To change the kind, `--model.sdf.encoding hashgrid` (or `--model.sdf.encoding.kind hashgrid`) replaces
the field with that kind's defaults before tyro parses the rest, whose overrides then apply to it.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

from nsr.config.io import ConfigError


def union_kinds(tp: Any) -> dict[str, type]:
    """`kind` value -> dataclass, for a union of dataclasses with a `kind` field (empty otherwise)."""
    if get_origin(tp) not in (Union, types.UnionType):
        return {}
    kinds = {}
    for cls in get_args(tp):
        if dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if f.name == "kind" and isinstance(f.default, str):
                    kinds[f.default] = cls
    return kinds


def _resolve(config: Any, path: list[str]) -> tuple[Any, str, dict[str, type]] | None:
    """(parent dataclass, field name, kinds) if `path` names a union field of `config`."""
    parent = config
    for name in path[:-1]:
        if not dataclasses.is_dataclass(parent) or not hasattr(parent, name):
            return None
        parent = getattr(parent, name)
    if not dataclasses.is_dataclass(parent) or path[-1] not in {f.name for f in dataclasses.fields(parent)}:
        return None
    kinds = union_kinds(get_type_hints(type(parent))[path[-1]])
    return (parent, path[-1], kinds) if kinds else None


def apply_kind_switches(config: Any, argv: list[str]) -> list[str]:
    """Apply `--a.b.field KIND` / `--a.b.field.kind KIND` to `config` in place; return the other args.

    The field is replaced by a default instance of the new kind; a field already of that kind keeps
    the preset's values. Raises ConfigError for an unknown kind.
    """
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            path = name.replace("-", "_").split(".")
            if path[-1] == "kind" and len(path) > 1:
                path = path[:-1]
            target = _resolve(config, path)
            has_value = eq or (i + 1 < len(argv) and not argv[i + 1].startswith("--"))
            if target is not None and has_value:
                if not eq:
                    value = argv[i + 1]
                    i += 1
                parent, field_name, kinds = target
                if value not in kinds:
                    raise ConfigError(f"{arg}: unknown kind {value!r} (choose from {', '.join(kinds)})")
                if getattr(getattr(parent, field_name), "kind", None) != value:
                    setattr(parent, field_name, kinds[value]())
                i += 1
                continue
        rest.append(arg)
        i += 1
    return rest


__all__ = ["apply_kind_switches", "union_kinds"]
