"""RDS Proxy's own log of a live run: the pins, as the local stand-in's audit has them.

RDS Proxy writes its log to CloudWatch Logs, group ``/aws/rds/proxy/<proxy
name>`` (AWS, "Troubleshooting for RDS Proxy": "information on CloudWatch
logs for RDS Proxy"; the group is named after the proxy), each entry
prefixed with the proxy endpoint's name. With the proxy's enhanced logging on
(``AWS::RDS::DBProxy`` ``DebugLogging``; the SAM template's
``ProxyDebugLogging`` parameter, off by default because it logs SQL), each
pinned session gives a line such as::

    2024-10-12T17:20:40 [WARN] [proxyEndpoint=default] [clientConnection=2125203372]
    The client session was pinned to the database connection [dbConnection=1953961465]
    for the remainder of the session. The proxy can't reuse this connection until the
    session ends. Reason: SQL changed session settings that the proxy doesn't track.
    Consider moving session configuration to the proxy's initialization query.
    Digest: "set search_path to $1,$2,$3".

(one line in the log). :func:`read_proxy_pins` reads the window's lines with
``filter_log_events`` (the filter keeps only those: enhanced logging writes
much more), and :func:`parse_pin_line` turns each into a reason in RDS Proxy's
words and its digest, the sample statement. ``connstorm live`` puts them in
``summary.json`` as a local run does (``pin_reasons``: reason -> sessions
pinned; ``pin_samples``: reason -> a digest), so the pinning audit of a live
run reads like a local one. The local stand-in writes the same line shape
(:data:`connstorm.local_stack.rds_proxy.proxy.PIN_LOG`), so one parser reads both.

Lines that only warn ("If this prepared statement runs, the client session
will be pinned ...") are not pins and are not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from connstorm.loadtests.orchestrator.cloudwatch_logs import log_pages

#: The phrase every pin line has; the Logs filter pattern that selects them.
PIN_PHRASE = "The client session was pinned to the database connection"
PIN_FILTER = f'"{PIN_PHRASE}"'
_PIN_LINE = re.compile(
    re.escape(PIN_PHRASE) + r" \[dbConnection=(?P<conn>\d+)\].*?Reason: "
    r"(?P<reason>.*?)(?: Digest: \"(?P<digest>.*)\"\.?)?\s*$", re.DOTALL)


def log_group(proxy_name: str) -> str:
    """The CloudWatch Logs group RDS Proxy writes for ``proxy_name``."""
    return f"/aws/rds/proxy/{proxy_name}"


def parse_pin_line(message: str) -> tuple[str, str] | None:
    """(reason, digest) of a pin line ("" when it has no digest), or None for any other line."""
    found = _PIN_LINE.search(message)
    if found is None:
        return None
    return " ".join(found.group("reason").split()), (found.group("digest") or "").strip()


@dataclass
class ProxyPins:
    """What the proxy's log group said over a window."""

    group: str
    #: The group exists (the proxy logged something, ever).
    found: bool = False
    pages: int = 0
    #: Pin lines seen (each is one client session pinned).
    events: int = 0
    pin_reasons: dict[str, int] = field(default_factory=dict)
    pin_samples: dict[str, str] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """What ``summary.json`` keeps under ``variants[].cloudwatch.proxy_log``."""
        return {"group": self.group, "found": self.found, "pages": self.pages,
                "pin_lines": self.events, "pin_reasons": dict(self.pin_reasons)}


def read_proxy_pins(client: Any, group: str, start_t: float, end_t: float, *,
                    page_size: int | None = None) -> ProxyPins:
    """The pin lines of ``group`` in [start_t, end_t], all pages, by reason."""
    pins = ProxyPins(group)
    for events in log_pages(client, group, start_t, end_t, page_size=page_size,
                            filter_pattern=PIN_FILTER):
        pins.found = True
        pins.pages += 1
        for event in events:
            parsed = parse_pin_line(str(event.get("message", "")))
            if parsed is None:
                continue
            reason, digest = parsed
            pins.events += 1
            pins.pin_reasons[reason] = pins.pin_reasons.get(reason, 0) + 1
            if digest:
                pins.pin_samples.setdefault(reason, digest)
    return pins
