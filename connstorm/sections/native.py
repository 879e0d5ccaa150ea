"""Native server settings inside a section: the keys that are not connstorm's own.

``[postgres]`` and ``[pgbouncer]`` take any setting of the server they configure,
under its own name and unit, besides the keys connstorm types itself. Those
extra keys are collected here into the section's ``settings`` (with the typed
ones, defaults included, so that ``settings`` is exactly what the server is
given), after checking that each is a single value, is not one connstorm manages,
and (for PgBouncer, whose list is closed) exists.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Collection, Mapping
from typing import Any

from connstorm.sections.base import KeyProblem, show

_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")


def collect_settings(cls: type, data: Any, *, typed: Collection[str], managed: Collection[str],
                     allowed: Collection[str] | None, what: str) -> Any:
    """Move a TOML table's native keys into ``settings``; other input passes through.

    ``typed`` names the fields that are also server settings (they go into
    ``settings`` too, with their defaults); every other key that is not a field of
    ``cls`` is a native setting. Only a TOML table (a ``dict``) is rewritten:
    Python callers pass ``settings`` themselves.
    """
    if not isinstance(data, Mapping):
        return data
    fields = {f.name: f for f in dataclasses.fields(cls)}
    own = {k: v for k, v in data.items() if k in fields}
    native: dict[str, Any] = {}
    for key, value in data.items():
        if key in fields:
            continue
        if not isinstance(key, str) or not _SETTING_NAME.match(key):
            raise KeyProblem(str(key), f"not a valid {what} setting name")
        if key in managed:
            raise KeyProblem(key, "is managed by connstorm and cannot be set in a scenario")
        if allowed is not None and key not in allowed:
            hint = difflib.get_close_matches(key, [*allowed, *fields], n=1)
            raise KeyProblem(key, f"unknown {what} setting"
                                  + (f"; did you mean {hint[0]}?" if hint else ""))
        if not isinstance(value, str | int | float | bool):
            raise KeyProblem(key, f"expected a single value, got {show(value)}")
        native[key] = value
    if "settings" in own:
        raise KeyProblem("settings", f"not a key: write {what} settings directly in the section")
    settings = {name: own.get(name, _default(fields[name])) for name in typed}
    settings.update(native)
    return {**own, "settings": settings}


def _default(field: dataclasses.Field[Any]) -> Any:
    default = field.default
    info = getattr(default, "default", default)  # a pydantic FieldInfo carries its default
    return info
