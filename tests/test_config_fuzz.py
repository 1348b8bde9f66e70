"""Any config file gives settings or one ConfigError, never another exception (issue 13)."""

from __future__ import annotations

import dataclasses
import math
import tempfile
import typing
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser_edge.configfile import ConfigError, load, parse
from ser_edge.settings import Settings


def _keys(cls: type, prefix: str = "") -> list[str]:
    """Every key path of the schema, e.g. mqtt.tls.ca_file."""
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(tp):
            out += _keys(tp, prefix + f.name + ".")
    return out


KEYS = _keys(Settings)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["replay", "microphone", "5", "energy", "/tmp/x", "0123", ""]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _nest(assignments: dict[str, object]) -> dict:
    tree: dict = {}
    for path, value in assignments.items():
        node = tree
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[last] = value
    return tree


def _numbers(obj: object) -> list[float]:
    if dataclasses.is_dataclass(obj):
        return [x for f in dataclasses.fields(obj) for x in _numbers(getattr(obj, f.name))]
    return [obj] if isinstance(obj, float) else []


def _outcome(text: str) -> None:
    try:
        s = parse(text, Settings, "c.yaml")
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)  # one line
    else:  # accepted: then every number is one (a NaN threshold silenced every event)
        assert isinstance(s, Settings) and all(math.isfinite(x) for x in _numbers(s))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=5))
def test_schema_shaped_configs_give_settings_or_one_line(assignments: dict) -> None:
    _outcome(yaml.safe_dump(_nest(assignments)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_settings_or_one_line(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_bytes(data)
        try:
            assert isinstance(load(path, Settings), Settings)
        except ConfigError as e:
            assert str(e) and "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("{}[]:,-?&*!|>'\"%@` \n\tab1.#\x00\x07"), max_size=80))
def test_yaml_punctuation_gives_settings_or_one_line(text: str) -> None:
    _outcome(text)


def test_a_key_with_a_line_break_is_named_on_one_line() -> None:
    """Found by the fuzzer: a quoted key of blank lines printed a two-line error."""
    try:
        parse("device:\n  ? '\n\n    '\n  : null\n", Settings, "c.yaml")
    except ConfigError as e:
        assert "\n" not in str(e) and "device.'\\n'" in str(e) and "unknown key" in str(e)
    else:
        raise AssertionError("a key of blank lines was accepted")
