"""The one shape every external resource has: ``start()``, ``stop()`` and ``with``.

Servers, processes, collectors and whole stacks are used the same way (style
guide item 2): ``start()`` returns once the resource is ready, ``stop()`` is
idempotent and safe on a resource that only half started, and the ``with``
block stops what a failed ``start()`` had already started before re-raising.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Resource:
    """Mixin giving ``start()``/``stop()`` classes their context-manager behaviour."""

    def start(self) -> None:
        """Start, returning once ready; raise (with the resource's log tail) otherwise."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop whatever is running; idempotent, and safe after a failed start."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
