"""connstorm's cache folder: things built once per machine and reused by every run.

The PostgreSQL cluster template (:mod:`connstorm.local_stack.postgres`) and the task
root of the built-in handlers (:mod:`connstorm.local_stack.lambda_.task_root`) live
here. The precedence is written once: ``$CONNSTORM_CACHE_DIR``, else
``$XDG_CACHE_HOME/connstorm`` (the XDG Base Directory Specification), else
``~/.cache/connstorm``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$CONNSTORM_CACHE_DIR``, else ``$XDG_CACHE_HOME/connstorm``, else ``~/.cache/connstorm``."""
    explicit = os.environ.get("CONNSTORM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "connstorm"
