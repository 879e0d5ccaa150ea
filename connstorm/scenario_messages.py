"""Turning a pydantic validation error into connstorm's one-line scenario error.

Every mistake in a scenario is reported as one line naming the file, where the
key is and what is wrong, for example::

    direct.toml: [postgres] max_connections: expected an integer, got "lots"
    direct.toml: [[functions]] api: timeout_s: must be at most 900, got 1000
    direct.toml: [load] userz: unknown key; did you mean users?

Pydantic finds the mistakes; this module only words them. Where a key sits is
read from the error's location, with list entries named as a reader knows them
(a function by its name, a route by its method and path).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from connstorm.sections.base import KeyProblem, show

#: Lists of tables, and how an entry is named in messages.
LIST_SECTIONS = ("functions", "routes", "timeline", "schedules")
_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "dict_type": "a table",
    "mapping_type": "a table", "dataclass_type": "a table", "dataclass_exact_type": "a table",
    "model_type": "a table", "tuple_type": "a list", "list_type": "a list",
}


def one_line(error: ValidationError, model: type, doc: Mapping[str, Any], source: str) -> str:
    """The first of ``error``'s problems as ``source: where: reason``."""
    details = error.errors()
    first = details[0]
    loc, reason = _problem(first, model)
    return f"{source}: {where(loc, doc)}: {reason}"


def _problem(detail: ErrorDetails, model: type) -> tuple[tuple[str | int, ...], str]:
    loc = tuple(detail["loc"])
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    value = detail.get("input")
    if kind == "value_error":
        exc = ctx.get("error")
        if isinstance(exc, KeyProblem):
            return loc + exc.key, exc.reason
        return loc, str(exc)
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        key = str(loc[-1])
        names = field_names(model, loc[:-1])
        hint = difflib.get_close_matches(key, names, n=1)
        return loc, "unknown key" + (f"; did you mean {hint[0]}?" if hint
                                     else f" (known: {', '.join(names)})")
    if kind == "missing":
        if loc == ("name",):
            return loc, "missing; every scenario needs a name"
        return loc, "missing"
    if kind in _TYPE_WORDS:
        return loc, f"expected {_TYPE_WORDS[kind]}, got {show(value)}"
    if kind == "greater_than_equal":
        return loc, f"must be at least {_num(ctx['ge'])}, got {show(value)}"
    if kind == "greater_than":
        return loc, f"must be more than {_num(ctx['gt'])}, got {show(value)}"
    if kind == "less_than_equal":
        return loc, f"must be at most {_num(ctx['le'])}, got {show(value)}"
    if kind == "less_than":
        return loc, f"must be less than {_num(ctx['lt'])}, got {show(value)}"
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return loc, f"must be one of {choices}; got {value!r}"
    if kind == "string_pattern_mismatch":
        return loc, f"not a valid value: {value!r}"
    if kind == "string_too_short" and value == "":
        return loc, "must not be empty (leave the key out instead)"
    return loc, detail["msg"]


def _num(bound: Any) -> str:
    """A range bound as written in a scenario: ``0`` rather than ``0.0``."""
    if isinstance(bound, float) and bound.is_integer():
        return str(int(bound))
    return str(bound)


def where(loc: Sequence[str | int], doc: Mapping[str, Any]) -> str:
    """A key's location as a reader finds it in the file: ``[postgres] max_connections``."""
    loc = [part for part in loc if part != "max_errors"]
    if not loc:
        return "top level"
    head = str(loc[0])
    if head in LIST_SECTIONS:
        if len(loc) == 1 or not isinstance(loc[1], int):
            return head
        label = f"[[{head}]] {_entry_name(head, loc[1], doc)}:"
        rest = ".".join(str(p) for p in loc[2:])
        return f"{label} {rest}" if rest else label[:-1]
    if len(loc) == 1 and not isinstance(doc.get(head), Mapping):
        return f"top level {head}"
    rest = ".".join(str(p) for p in loc[1:])
    return f"[{head}] {rest}" if rest else f"[{head}]"


def _entry_name(section: str, index: int, doc: Mapping[str, Any]) -> str:
    entries = doc.get(section)
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    if isinstance(entry, Mapping):
        if section == "functions" and isinstance(entry.get("name"), str):
            return str(entry["name"])
        if (section == "routes" and isinstance(entry.get("method"), str)
                and isinstance(entry.get("path"), str)):
            return f"{entry['method'].upper()} {entry['path']}"
    return f"#{index + 1}"


def field_names(model: type, loc: Sequence[str | int]) -> list[str]:
    """The keys a table at ``loc`` (below ``model``) may have, as written in TOML."""
    cls: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(cls, "__pydantic_fields__", {})
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return []
        cls = _dataclass_in(info.annotation)
        if cls is None:
            return []
    if not dataclasses.is_dataclass(cls):
        return []
    fields = getattr(cls, "__pydantic_fields__", {})
    names = [info.alias or name for name, info in fields.items()
             if name not in ("settings", "source", "raw", "max_errors")]
    return sorted([*names, *getattr(cls, "EXTRA_KEYS", ())])


def _dataclass_in(annotation: Any) -> type | None:
    """The section class inside ``X | None``, ``tuple[X, ...]`` and the like."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _dataclass_in(arg)
            if found is not None:
                return found
    return None
