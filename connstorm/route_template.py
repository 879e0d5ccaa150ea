"""API Gateway path templates (``/items/{id}``, ``/files/{proxy+}``), parsed once, matched fast.

Two layers need the same parsing: the scenario, which must refuse a
``[[routes]]`` path API Gateway would refuse while the file is read, and the
emulator's front, which matches requests against the templates. It lives here,
in the base, so that the scenario never imports the emulator for it.

The rules are API Gateway's (API Gateway Developer Guide, "Create routes for
HTTP APIs in API Gateway", section "Working with path variables"): a variable
is a whole segment in braces, a greedy ``{name+}`` catches the rest of the path
and must be last. When several routes match a request, the best match wins
(same page, "Routing API requests"): a literal segment beats a variable, which
beats a greedy variable; :attr:`PathTemplate.rank` orders them.

>>> t = parse_template("GET", "/items/{id}")
>>> t.match(["items", "42"])
{'id': '42'}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: The method of a route that takes every method.
ANY = "ANY"
_VARIABLE = re.compile(r"^\{([A-Za-z0-9_.\-]+)(\+?)\}$")

# Segment ranks for specificity: higher is more specific.
LITERAL_RANK, VARIABLE_RANK, GREEDY_RANK = 2, 1, 0


class RouteTemplateError(ValueError):
    """A path template API Gateway would not accept (names the template and why)."""


def integration_timeout_s(payload: str, configured: float | None) -> float:
    """API Gateway's integration timeout: ``configured``, else 29 s for REST (payload
    1.0) and 30 s for HTTP APIs (2.0) (API Gateway Developer Guide, "Amazon API
    Gateway quotas", integration timeout)."""
    if configured is not None:
        return configured
    return 29.0 if payload == "1.0" else 30.0


@dataclass(frozen=True)
class PathTemplate:
    """A route's path template, split into segments, with its variables named."""

    path: str
    segments: tuple[str, ...]
    #: For each segment: the variable's name, or None for a literal.
    names: tuple[str | None, ...]
    greedy: bool
    rank: tuple[int, ...]

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """Path parameters when ``parts`` (the request path split on '/') match, else None."""
        n = len(self.segments)
        if self.greedy:
            # {proxy+} needs at least one segment of its own.
            if len(parts) < n:
                return None
        elif len(parts) != n:
            return None
        params: dict[str, str] = {}
        last = n - 1
        for i, (literal, name) in enumerate(zip(self.segments, self.names, strict=True)):
            if self.greedy and i == last:
                rest = "/".join(parts[i:])
                if not rest:
                    return None
                params[name or "proxy"] = rest
                return params
            part = parts[i]
            if name is None:
                if part != literal:
                    return None
            elif not part:
                return None
            else:
                params[name] = part
        return params


def parse_template(method: str, path: str) -> PathTemplate:
    """Parse a route's template; raises :class:`RouteTemplateError` for a bad one."""
    where = f"route {method} {path}"
    if not path.startswith("/"):
        raise RouteTemplateError(f"{where}: the path must start with '/'")
    raw = path[1:].split("/") if path != "/" else []
    if path.endswith("/") and path != "/":
        raise RouteTemplateError(f"{where}: the path must not end with '/'")
    names: list[str | None] = []
    rank: list[int] = []
    greedy = False
    seen: set[str] = set()
    for i, seg in enumerate(raw):
        if not seg:
            raise RouteTemplateError(f"{where}: empty path segment")
        m = _VARIABLE.match(seg)
        if m is None:
            if "{" in seg or "}" in seg:
                raise RouteTemplateError(f"{where}: segment {seg!r}: a variable must be a "
                                         f"whole segment, like {{id}}")
            names.append(None)
            rank.append(LITERAL_RANK)
            continue
        name, plus = m.group(1), m.group(2)
        if name in seen:
            raise RouteTemplateError(f"{where}: variable {{{name}}} used twice")
        seen.add(name)
        if plus:
            if i != len(raw) - 1:
                raise RouteTemplateError(f"{where}: greedy {{{name}+}} must be the last segment")
            greedy = True
            rank.append(GREEDY_RANK)
        else:
            rank.append(VARIABLE_RANK)
        names.append(name)
    return PathTemplate(path=path, segments=tuple(raw), names=tuple(names), greedy=greedy,
                        rank=tuple(rank))
