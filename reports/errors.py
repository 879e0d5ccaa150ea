"""Errors of the reports area: a run folder that cannot be rendered.

A report is asked for by a user pointing at a folder, so every problem is the
user's to fix (wrong path, a run that never wrote its files, a damaged file)
and is reported as one line naming the file, with the usage exit code.
"""

from __future__ import annotations

from connstorm.errors import ConnstormError, ExitCode


class ReportError(ConnstormError):
    """A run folder is missing, incomplete or damaged; names the file and the reason."""

    exit_code = ExitCode.USAGE
