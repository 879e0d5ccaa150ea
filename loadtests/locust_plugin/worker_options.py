"""Locust's default options, parsed once per process instead of once per option.

A Locust 2.x worker handling a spawn message keeps the master's options that are
not Locust's own, testing each one against ``argument_parser.default_args_dict()``
inside a comprehension (``locust/runners.py``, ``WorkerRunner.handle_message``,
"receive custom arguments"); each call builds and parses Locust's whole default
parser again. A message carries some 70 options with connstorm's, so the worker
spends 70 parses (about 3 s on a busy 2-core machine) without sending its heartbeat,
and the master declares it missing after ``HEARTBEAT_LIVENESS`` (3) missed
heartbeats (Locust documentation, "Distributed load generation"): the run ends with
workers missing and no request made. The defaults do not change within a process,
so they are parsed once; each caller gets its own copy, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from locust import argument_parser


def parse_defaults_once() -> None:
    """Make ``argument_parser.default_args_dict`` parse once per process (idempotent)."""
    current: Any = argument_parser.default_args_dict
    if getattr(current, "connstorm_cached", False):
        return
    parsed: Callable[[], dict[str, Any]] = functools.cache(current)

    def default_args_dict() -> dict[str, Any]:
        return dict(parsed())

    default_args_dict.connstorm_cached = True  # type: ignore[attr-defined]
    module: Any = argument_parser
    module.default_args_dict = default_args_dict
