"""What every section shares: the model configuration, strict scalar types, key problems.

The scenario is TOML, whose types are exact: ``max_connections = "20"`` is a
string, not a number, and ``true`` is not ``1``. So scalars are strict (no
string-to-number or bool-to-int coercion; an integer is still a valid float, as
TOML readers expect), while containers stay lax so that a TOML array becomes a
tuple and an inline table a nested section. Unknown keys are rejected
(``extra="forbid"``); :mod:`connstorm.scenario_messages` adds the "did you mean".

Sections are pydantic *dataclasses* rather than ``BaseModel``: the rest of
connstorm builds them positionally and with :func:`dataclasses.replace`, and
they serialise with :func:`dataclasses.asdict` into the emulator's config file.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Strict, StrictBool, StrictStr

#: Configuration of every section: unknown keys are errors, Python callers may use
#: attribute names where TOML uses aliases. Field docstrings are the schema's
#: descriptions, but :mod:`connstorm.scenario_schema` reads them when it renders the
#: schema: pydantic's ``use_attribute_docstrings`` re-read each class's source at
#: import, 45 % of importing the scenario model, paid by every command (issue 24).
SECTION = ConfigDict(extra="forbid", populate_by_name=True)

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = StrictBool
Str = StrictStr

#: One value of a server's native setting (postgresql.conf, pgbouncer.ini).
SettingValue = str | int | float | bool

#: JSON Schema of one native setting value.
SETTING_VALUE_SCHEMA: dict[str, Any] = {"type": ["string", "integer", "number", "boolean"]}


class KeyProblem(ValueError):
    """A rule broken by one key, raised inside a validator.

    ``key`` is the key's path below the section (or list entry) whose validator
    raised it, so that the one-line message names the key rather than the
    section; ``reason`` is the rest of the line.
    """

    def __init__(self, key: str | tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.key: tuple[str | int, ...] = (key,) if isinstance(key, str) else tuple(key)
        self.reason = reason


def show(value: Any) -> str:
    """A value as a TOML reader would recognise it in an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)
