"""Scenario files with generated mistakes: each is one line, a ScenarioError, never a crash.

Property-based (hypothesis, bounded like the emulator's fuzzers): start from
every built-in scenario and break it the ways people do: a key deleted, a value
of any TOML type (huge and negative numbers, NaN, dates, nested tables, lists)
put anywhere, unknown keys and sections, a table where a list of tables goes,
``--set`` overrides of any text, and the file's text itself cut or garbled.
Only :func:`connstorm.scenario.load_scenario`, ``parse_scenario``,
``apply_override`` and :class:`ScenarioError` are used, so the test holds
whatever the model is built from.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connstorm.errors import ScenarioError
from connstorm.scenario import (
    apply_override,
    builtin_names,
    load_scenario,
    parse_scenario,
    resolve_path,
)

EXAMPLES = int(os.environ.get("CONNSTORM_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SOURCE = "fuzz.toml"

BUILTINS = {name: tomllib.loads(resolve_path(name).read_text(encoding="utf-8"))
            for name in builtin_names()}

scalars = st.one_of(
    st.booleans(), st.integers(-(2**70), 2**70), st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "direct", "pgbouncer", "transaction", "GET", "/x/{id}", "api", "-1",
                     "1e309", "module_level", "none"]),
    st.datetimes(), st.dates(), st.times(),
    st.datetimes(timezones=st.just(dt.UTC)))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=6)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed TOML document: keys of tables, items of lists."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, (*prefix, index))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def broken_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A built-in scenario with one to three mistakes put in."""
    doc = copy.deepcopy(BUILTINS[draw(st.sampled_from(sorted(BUILTINS)))])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        op = draw(st.sampled_from(["delete", "replace", "add", "add_section"]))
        if op == "add_section" or not paths:
            doc[draw(st.text(min_size=1, max_size=12))] = draw(values)
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(values)
        else:
            holder = parent[path[-1]]
            if isinstance(holder, dict):
                holder[draw(st.text(min_size=1, max_size=12))] = draw(values)
            elif isinstance(holder, list):
                holder.append(draw(values))
            else:
                parent[path[-1]] = draw(values)
    return doc


def _assert_one_line(exc: ScenarioError) -> None:
    text = str(exc)
    assert text.startswith(SOURCE) or "fuzz" in text, text
    assert "\n" not in text, text
    assert "Traceback" not in text
    assert len(text) < 2000, text


@FUZZ
@given(doc=broken_documents())
def test_scenario_broken_document_is_a_scenario_or_one_line(doc: dict[str, Any]) -> None:
    try:
        parse_scenario(doc, source=SOURCE)
    except ScenarioError as exc:
        _assert_one_line(exc)


@FUZZ
@given(name=st.sampled_from(sorted(BUILTINS)),
       overrides=st.lists(st.one_of(
           st.text(max_size=40),
           st.tuples(st.sampled_from(["postgres", "pgbouncer", "load", "lambda", "functions",
                                      "functions.api", "thresholds", "routes", "timeline",
                                      "rds_proxy", "live", "x"]),
                     st.text("abcdefghijklmnopqrstuvwxyz_.", min_size=0, max_size=20),
                     st.one_of(st.text(max_size=20), st.integers().map(str),
                               st.sampled_from(["true", "[1, 2]", "{a = 1}", "nan", "-inf",
                                                '"x"', "1979-05-27"])))
           .map(lambda t: f"{t[0]}.{t[1]}={t[2]}")), min_size=1, max_size=3))
def test_scenario_overrides_are_a_scenario_or_one_line(name: str, overrides: list[str]) -> None:
    doc = copy.deepcopy(BUILTINS[name])
    try:
        for item in overrides:
            apply_override(doc, item, source=SOURCE)
        parse_scenario(doc, source=SOURCE)
    except ScenarioError as exc:
        _assert_one_line(exc)


@FUZZ
@given(name=st.sampled_from(sorted(BUILTINS)), cut=st.floats(0, 1),
       noise=st.binary(max_size=12), at=st.floats(0, 1))
def test_scenario_garbled_file_is_a_scenario_or_one_line(
        tmp_path_factory: pytest.TempPathFactory, name: str, cut: float, noise: bytes,
        at: float) -> None:
    text = resolve_path(name).read_bytes()
    text = text[:math.floor(len(text) * cut)]
    where = math.floor(len(text) * at)
    path = tmp_path_factory.mktemp("garbled") / SOURCE
    path.write_bytes(text[:where] + noise + text[where:])
    try:
        load_scenario(path)
    except ScenarioError as exc:
        text_out = str(exc)
        assert "\n" not in text_out, text_out
        assert str(path) in text_out


def test_scenario_not_a_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path)
    assert "\n" not in str(caught.value)


def test_scenario_key_with_newline_or_escape_is_one_line(tmp_path: Path) -> None:
    # Found by the fuzzer: a quoted key may hold a newline or a terminal escape,
    # and the message quoted it raw, over two lines.
    path = tmp_path / SOURCE
    path.write_text('name = "t"\n"bad\\nkey\\u001b[31m" = 1\n', encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(f"{path}: top level bad\\nkey\\x1b[31m: unknown key")
