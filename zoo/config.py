"""Strict construction of frozen config dataclasses from JSON-like dicts."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing

from zoo.errors import ConfigError


def valid_keys(cls) -> list[str]:
    """The field names of a config dataclass."""
    return [f.name for f in dataclasses.fields(cls)]


def removed_keys(cls) -> dict:
    """The keys a config class has removed: name -> (the value that meant off, what to do instead)."""
    return getattr(cls, "removed_keys", {})


def config_from_dict(cls, data: dict, what: str = "config"):
    """Build `cls(**data)`, refusing unknown keys and ill-typed values with a clear error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(data).__name__}")
    data = drop_removed_keys(cls, data, what)
    keys = valid_keys(cls)
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ConfigError(f"unknown {what} key(s) {', '.join(unknown)}; valid keys: {', '.join(keys)}")
    hints = typing.get_type_hints(cls)
    values = {k: coerce(v, hints[k], f"{what} key {k!r}") for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {what}: {exc}") from None


def drop_removed_keys(cls, data: dict, what: str = "config") -> dict:
    """`data` without the keys its class lists as `removed_keys = {"name": (off_value, "what to do instead")}`:
    a key at its off value (the behaviour kept) is dropped, any other value is an error giving the advice."""
    removed = removed_keys(cls)
    for key in sorted(removed.keys() & data.keys()):
        off, advice = removed[key]
        try:
            value = coerce(data[key], type(off), key)   # "false" from --set is false
        except ConfigError:
            value = data[key]
        value = tuple(value) if isinstance(value, list) else value   # config.json writes tuples as lists
        if type(value) is not type(off) or value != off:   # 0 is not False, as for an ordinary bool field
            raise ConfigError(f"{what} key {key!r} was removed, so {key}={json.dumps(value, default=repr)} is no "
                              f"longer possible; {advice}")
    return {k: v for k, v in data.items() if k not in removed}


def coerce(value, hint, where: str):
    """Check (and gently convert: int->float, list->tuple, strings from --set) one value."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else object
        return tuple(coerce(v, item, where) for v in value)
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint in (int, float) and isinstance(value, str):   # from --set
        try:
            value = hint(value)
        except ValueError:
            pass
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Turn ["key=value", ...] (from --set) into a dict of strings."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set needs key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def to_dict(config) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
