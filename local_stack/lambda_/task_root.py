"""The task root of the built-in handlers: a folder that holds ``handlers/`` and nothing else.

On AWS the function's code is unpacked into ``/var/task`` (``LAMBDA_TASK_ROOT``),
which is also the working directory and the first entry of ``sys.path`` ("Defining
Lambda function handlers in Python", and "Using Lambda environment variables",
section "Defined runtime environment variables"). The zip ``connstorm package``
builds holds exactly ``handlers/`` and the drivers. Locally, the built-in handlers
must see the same thing: not the folder connstorm is installed in (a wheel puts
``connstorm/packaging.py`` beside them, which would shadow the ``packaging``
distribution), and not a user's own ``handlers/`` package (issue: a Lambda project
with its own ``handlers/`` is common).

So the task root is a folder in connstorm's cache holding one symbolic link,
``handlers`` -> the installed ``connstorm.handlers``, named after where that
package lives, so two checkouts never share one. The handlers import each other
relatively, so they run the same as ``handlers.*`` here, in the zip, and as
``connstorm.handlers.*`` inside connstorm.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from connstorm.local_stack.cache import cache_root


def builtin_handlers_dir() -> Path:
    """Where the ``connstorm.handlers`` package is, found without importing it."""
    spec = importlib.util.find_spec("connstorm.handlers")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("connstorm.handlers is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def builtin_task_root() -> Path:
    """The task root of the built-in handlers, created (or repaired) on first use.

    Safe for concurrent callers: the link is made under a unique name and renamed
    into place, so a reader sees either no link or a whole one.
    """
    handlers = builtin_handlers_dir()
    digest = hashlib.sha256(str(handlers).encode()).hexdigest()[:16]
    root = cache_root() / "task-roots" / digest
    link = root / "handlers"
    if link.is_symlink() and link.resolve() == handlers:
        return root
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".handlers.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(handlers, target_is_directory=True)
    os.replace(tmp, link)
    return root
