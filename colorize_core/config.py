"""Typed configuration dataclasses to and from plain dicts (JSON in checkpoints, MLflow, Prefect).

`from_dict` is the inverse of `dataclasses.asdict` for the project's frozen configs: nested
dataclasses are rebuilt from their type hints and JSON lists become tuples where a tuple is declared.
Unknown keys are an error, so a typo in a parameter file never passes silently.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], d: dict[str, Any] | None) -> T:
    if d is None:
        return cls()
    if isinstance(d, cls):
        return d
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for k, v in d.items():
        hint = hints[k]
        if dataclasses.is_dataclass(hint) and isinstance(v, dict):
            v = from_dict(hint, v)
        elif typing.get_origin(hint) is tuple and isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def with_overrides(cfg: T, assignments: list[str]) -> T:
    """`cfg` with dotted `key=value` assignments applied (`steps=8000`, `augment.degrade.p=0.6`),
    each value parsed by its field's declared type: the command line's view of any config."""
    d = dataclasses.asdict(cfg)
    for a in assignments:
        key, sep, text = a.partition("=")
        if not sep:
            raise ValueError(f"{a!r}: expected key=value")
        *parents, leaf = key.strip().split(".")
        node, owner = d, type(cfg)
        for p in parents:
            if p not in node or not isinstance(node[p], dict):
                raise ValueError(f"{key}: {owner.__name__} has no section {p!r}")
            owner = typing.get_type_hints(owner)[p]
            node = node[p]
        if leaf not in node or isinstance(node[leaf], dict):
            raise ValueError(f"{key}: {owner.__name__} has no field {leaf!r}")
        node[leaf] = _parse(typing.get_type_hints(owner)[leaf], text.strip(), key)
    return from_dict(type(cfg), d)


def _parse(hint: Any, text: str, key: str) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return tuple(_parse(args[0], t.strip(), key) for t in text.split(","))
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if text.lower() in ("none", "null", ""):
            return None
        hint = args[0]
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        return hint(text) if hint in (int, float, str) else text
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a {getattr(hint, '__name__', hint)}") from None


def describe(cls: type, prefix: str = "") -> list[str]:
    """`key=default` for every field, nested sections dotted: what `--set` accepts."""
    out = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            out += describe(hint, f"{prefix}{f.name}.")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append(f"{prefix}{f.name}={','.join(map(str, default)) if isinstance(default, tuple) else default}")
    return out
