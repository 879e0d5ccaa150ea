"""The rich Console every command prints through: full lines when not on a terminal.

rich sizes a Console that does not write to a terminal at 80 columns (or
``$COLUMNS``) and wraps or crops to it, so ``connstorm up > up.log`` lost the
ends of the PostgreSQL and PgBouncer lines and CI logs of ``connstorm repro``
got a squeezed table. Logs, pipes and CI get lines as long as they are instead:
text is never wrapped (``soft_wrap``) and tables get :data:`PIPE_WIDTH` columns,
which they do not fill (a rich Table only takes the width it needs). On a
terminal nothing changes: rich follows the window.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from rich.console import Console

#: Room given to tables when the output is not a terminal: wide enough for any
#: table connstorm prints (repro's widest, eight variants, is under 250).
PIPE_WIDTH = 1000


def output_console(file: IO[str] | None = None, **options: Any) -> Console:
    """A Console on ``file`` (default stdout) that never cuts lines when not a terminal."""
    target = file if file is not None else sys.stdout
    console = Console(file=file, **options)
    if not console.is_terminal or not _isatty(target):
        console = Console(file=file, width=PIPE_WIDTH, soft_wrap=True, **options)
    return console


def _isatty(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False
