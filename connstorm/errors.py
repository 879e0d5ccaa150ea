"""Errors the user can act on, each with its own exit code.

Every error that reaches the command line as a subclass of :class:`ConnstormError`
is printed as one line (no traceback) and ends the process with ``exit_code``.
Anything else is a bug in connstorm and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in docs/exit-codes.md; scripts rely on them."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    SCENARIO = 3
    ENVIRONMENT = 4
    STACK = 5
    THRESHOLDS = 6
    LIVE_STACK = 7
    LIVE_OUTPUT = 8
    LIVE_CREDENTIALS = 9
    LIVE_REGION = 10
    LIVE_API = 11
    LOCUSTFILE = 12
    INTERRUPTED = 130
    TERMINATED = 143


class ConnstormError(Exception):
    """Base of every error connstorm reports to the user as one line."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ScenarioError(ConnstormError):
    """A scenario file or an override is wrong: names the file, the key and the reason.

    Always one line: keys and values quoted from the file may hold newlines or
    terminal escapes (TOML allows ``"\\n" = 1``), so control characters in the
    message are shown escaped (``\\n``, ``\\x1b``).
    """

    exit_code = ExitCode.SCENARIO

    def __init__(self, message: str) -> None:
        super().__init__(escape_controls(message))


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape: one printable line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else
                   ch.encode("unicode_escape").decode("ascii") for ch in text)


class EnvironmentProblemError(ConnstormError):
    """The machine lacks something (a binary, a free port, a permission)."""

    exit_code = ExitCode.ENVIRONMENT


class StackError(ConnstormError):
    """A server of the stack failed to start or died; carries its log tail."""

    exit_code = ExitCode.STACK


class ThresholdsFailedError(ConnstormError):
    """A run finished but broke at least one of its scenario's thresholds."""

    exit_code = ExitCode.THRESHOLDS


class LiveStackError(ConnstormError):
    """``connstorm live``: the CloudFormation stack does not exist (in that region)."""

    exit_code = ExitCode.LIVE_STACK


class LiveOutputError(ConnstormError):
    """``connstorm live``: the stack lacks an output connstorm reads (``ApiUrl``, ...)."""

    exit_code = ExitCode.LIVE_OUTPUT


class LiveCredentialsError(ConnstormError):
    """``connstorm live``: the boto3 chain found no AWS credentials, or AWS refused them."""

    exit_code = ExitCode.LIVE_CREDENTIALS


class LiveRegionError(ConnstormError):
    """``connstorm live``: no region, an unknown one, or not the stack's."""

    exit_code = ExitCode.LIVE_REGION


class LiveApiError(ConnstormError):
    """``connstorm live``: the API URL does not answer."""

    exit_code = ExitCode.LIVE_API


class LocustfileError(ConnstormError):
    """A locustfile of one's own (``[load] locustfile``, ``--locustfile``) that cannot run.

    Missing, not a ``.py`` file, failing to import, or without a User class:
    found before anything starts.
    """

    exit_code = ExitCode.LOCUSTFILE
