"""YAML into frozen settings dataclasses, with errors that name the key path and line.

The dataclasses are the schema: a field's type says what is accepted, its default what
an omitted key means, and an optional ``check`` in its metadata narrows the values
(``field(default=1883, metadata=check(1, 65535))``). Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
import unicodedata
from pathlib import Path
from typing import Any

import yaml

MAX_TEXT = 4096
"""The longest string value (PATH_MAX): anything longer is a mistake."""


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key, the problem and the line."""


def check(low: float | None = None, high: float | None = None, choices: tuple = ()) -> dict:
    """Field metadata restricting a number to [low, high] or a value to choices."""
    return {"low": low, "high": high, "choices": choices}


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, node: yaml.Node | None) -> str:
        return f" ({self.source} line {node.start_mark.line + 1})" if node is not None else f" ({self.source})"


def _describe(tp: Any, meta: dict) -> str:
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices", ())
    if choices:
        return "one of " + ", ".join(repr(c) for c in choices)
    span = f" from {low:g} to {high:g}" if low is not None and high is not None else ""
    span = span or (f" >= {low:g}" if low is not None else "")
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}
    return names.get(tp, getattr(tp, "__name__", str(tp))) + span


def _scalar(value: Any, tp: Any, meta: dict) -> Any:
    """value converted to tp, or None when it is not acceptable."""
    if tp is bool:
        return value if isinstance(value, bool) else None
    if tp is int:
        value = value if isinstance(value, int) and not isinstance(value, bool) else None
    elif tp is float:  # never NaN or infinity: every comparison with them is false
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if number else None
    elif tp is str:  # numbers too, as written: "protocol: 5"
        value = str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    elif tp is Path:
        value = Path(value).expanduser() if isinstance(value, str) and value else None
    if value is None:
        return None
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices", ())
    if choices and value not in choices:
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        return None
    return value


def _text_problem(text: str) -> str:
    """Why a string value cannot go into a topic, a log line, a file name or a packet; ""
    when it can. (A NUL makes the broker drop the client with nothing logged; a lone
    surrogate cannot be encoded at all; a huge value breaks packet framing.)"""
    if len(text) > MAX_TEXT:
        return f"{len(text)} characters long; at most {MAX_TEXT}"
    if bad := next((c for c in text if unicodedata.category(c) in ("Cc", "Cs")), None):
        kind = "a lone surrogate" if unicodedata.category(bad) == "Cs" else "a control character"
        return f"contains {kind} ({bad!r} at {text.index(bad)})"
    return ""


def _convert(node: yaml.Node, tp: Any, meta: dict, path: str, loader: yaml.SafeLoader, where: _Where) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return None
        return _convert(node, options[0], meta, path, loader, where)
    if dataclasses.is_dataclass(tp):
        return _build(node, tp, path, loader, where)
    if origin is tuple:
        if not isinstance(node, yaml.SequenceNode):
            raise ConfigError(f"{path}: expected a list{where(node)}")
        item = typing.get_args(tp)[0]
        return tuple(_convert(n, item, meta, f"{path}[{i}]", loader, where) for i, n in enumerate(node.value))
    value = loader.construct_object(node, deep=True) if isinstance(node, yaml.ScalarNode) else None
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) != node.value:
        raise ConfigError(f'{path}: YAML reads {node.value} as the number {value!r}; write it in quotes: "{node.value}"'
                          f"{where(node)}")  # fmt: skip
    converted = _scalar(value, tp, meta)
    if isinstance(converted, (str, Path)) and (problem := _text_problem(str(converted))):
        raise ConfigError(f"{path}: {problem}{where(node)}")
    if converted is None:
        got = repr(value) if isinstance(node, yaml.ScalarNode) else "a " + type(node).__name__[:-4].lower()
        raise ConfigError(f"{path}: expected {_describe(tp, meta)}, got {got}{where(node)}")
    return converted


def _build(node: yaml.Node | None, cls: type, prefix: str, loader: yaml.SafeLoader, where: _Where) -> Any:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return cls()
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{prefix or 'the config'}: expected a mapping of settings{where(node)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(f"{prefix or 'the config'}: a key must be a name, not a list or mapping{where(key_node)}")
        key = loader.construct_object(key_node)
        shown = key if isinstance(key, str) and key.isprintable() and key.strip() == key and key else repr(key)
        path = f"{prefix}.{shown}" if prefix else shown
        if key not in fields:
            known = ", ".join(fields)
            raise ConfigError(f"{path}: unknown key (known here: {known}){where(key_node)}")
        if key in values:
            raise ConfigError(f"{path}: given twice{where(key_node)}")
        values[key] = _convert(value_node, hints[key], dict(fields[key].metadata), path, loader, where)
    try:
        return cls(**values)
    except ValueError as e:  # cross-field rules in __post_init__
        raise ConfigError(f"{prefix or 'config'}: {e}{where(node)}") from None


def parse(text: str, cls: type, source: str = "config") -> Any:
    """Settings of type cls from YAML text; ConfigError on any problem."""
    where = _Where(source)
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters
        node = loader.get_single_node()
        return _build(node, cls, "", loader, where)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"not valid YAML: {problem} ({source}{line})") from None
    except RecursionError:
        raise ConfigError(f"not a config: nested too deeply ({source})") from None
    finally:
        if loader is not None:
            loader.dispose()


def load(path: Path, cls: type) -> Any:
    """Settings of type cls from a YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config ({getattr(e, 'strerror', None) or e})") from None
    return parse(text, cls, source=path.name)
