"""Typed options: dataclass fields set from command-line strings and YAML values, never by eval.

    coerce("3e-4", float, "train.lr") -> 0.0003
    coerce_fields(TrainConfig, {"lr": "3e-4"}, "train") -> {"lr": 0.0003}   # unknown keys name the known ones
    parse_sets(["train.lr=3e-4", "model.channels=32"]) -> {"train": {"lr": "3e-4"}, "model": {"channels": "32"}}

Every config dataclass (a family's, training's, an agent's) is filled through these, so a bad value is
one PlayworldError naming the field and the type it takes.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

from playworld.errors import PlayworldError


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """Optional[X] / X | None -> (X, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Turn `value` (a command-line string or a YAML scalar/list) into the field type `tp`.

    Handles int, float, bool, str, Literal[...], Optional[...], tuple[X, ...] and list[X].
    Raises PlayworldError naming the field when the value does not fit.
    """
    tp, optional = _strip_optional(tp)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
        return None
    bad = PlayworldError(f"bad value {value!r} for {name}", f"{name} takes a {_type_name(tp)}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if str(value) == str(choice):
                return choice
        raise PlayworldError(f"bad value {value!r} for {name}", f"choose one of {', '.join(map(str, choices))}")
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            items = [s.strip() for s in text.split(",") if s.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise bad
        args = typing.get_args(tp)
        item_tp = args[0] if args else str
        out = [coerce(v, item_tp, name) for v in items]
        return tuple(out) if origin is tuple else out
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise bad
    if tp in (int, float, str):
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise bad
        if tp is not str and isinstance(value, (bool, list, dict, tuple)):  # YAML true/[...] is not a number
            raise bad
        try:
            out = tp(value)
        except (TypeError, ValueError, OverflowError):
            raise bad from None
        if tp is float and not math.isfinite(out):  # nan/inf pass every range check and break the optimiser
            raise PlayworldError(f"bad value {value!r} for {name}", f"{name} takes a finite number")
        return out
    return value  # a type we do not know how to parse: pass YAML values through unchanged


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce_fields(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """Coerce every entry of `values` to the type of the same-named field of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PlayworldError(
            f"unknown {section} option(s): {', '.join(unknown)}", f"known options are {', '.join(sorted(known))}"
        )
    return {k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}


def parse_sets(sets: list[str] | None) -> dict[str, dict[str, str]]:
    """['train.lr=3e-4', 'model.channels=32'] -> {'train': {'lr': '3e-4'}, 'model': {'channels': '32'}}.

    `model.<family>.<field>=v` is accepted too and means the same as `model.<field>=v`.
    """
    out: dict[str, dict[str, str]] = {"train": {}, "model": {}}
    for item in sets or []:
        key, sep, value = item.partition("=")
        section, _, field = key.strip().partition(".")
        if not sep or section not in out or not field:
            raise PlayworldError(
                f"cannot parse --set {item!r}", "write --set train.<field>=<value> or --set model.<field>=<value>"
            )
        out[section][field.rsplit(".", 1)[-1]] = value.strip()
    return out


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass -> plain YAML-friendly dict (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out
