"""A function's asynchronous (``Event``) invocation queue, with Lambda's two kinds of retry.

Lambda answers an ``Event`` invocation at once (202) and runs it later from an
internal queue. What happens when a run does not succeed depends on why
(AWS Lambda developer guide, "How Lambda handles errors and retries with
asynchronous invocation"):

* **Throttled** (no concurrency, scaling rate or request rate left): the event
  goes back to the queue and is tried again with exponential backoff, from
  about a second upward. Those tries are not "retries" in the
  ``MaximumRetryAttempts`` sense. Here: ``THROTTLE_MAX_TRIES`` tries, waiting
  20 ms doubling to 1 s (AWS keeps trying for up to 6 hours; a load test
  wants the loss reported, not hidden for hours), and then the event is
  recorded as throttled.
* **Failed** (function error, timeout, crash, init error): Lambda retries it
  ``MaximumRetryAttempts`` times (0-2, default 2), waiting one minute before the
  first retry and two before the second. Here per function:
  ``event_retry_attempts`` and ``event_retry_delay_s`` (the second retry waits
  twice as long). A retry is queued again (behind what arrived meanwhile), and
  keeps the request id, as on AWS; each run is recorded in
  ``invocations.jsonl`` with its ``attempt`` (1, 2, 3).

The queue holds no reference to the emulator: :meth:`EventQueue.run` is handed
the two callbacks it needs, so the scheduling rules here can be read apart from
the environments' state machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from connstorm.scenario import FunctionConfig

log = logging.getLogger(__name__)

#: Runs of a throttled event before it is given up (backing off 20 ms doubling to 1 s).
THROTTLE_MAX_TRIES = 40
THROTTLE_FIRST_DELAY_S = 0.02
THROTTLE_MAX_DELAY_S = 1.0
#: Outcomes Lambda retries ``MaximumRetryAttempts`` times (throttles are retried apart).
RETRIED_OUTCOMES = frozenset({"function_error", "timeout", "crash", "init_error"})


@dataclass(frozen=True)
class QueuedEvent:
    """One asynchronous invocation waiting to run; ``attempt`` counts from 1."""

    request_id: str
    request: InvocationRequest
    attempt: int = 1


def retry_delay_s(fn: FunctionConfig, failed_attempt: int) -> float | None:
    """How long to wait before retrying an event whose ``failed_attempt`` failed.

    ``None`` when the function's retries are used up. The first retry waits
    ``event_retry_delay_s``, the second twice that (AWS: 1 min, then 2 min).
    """
    if failed_attempt > fn.event_retry_attempts:
        return None
    return fn.event_retry_delay_s * 2.0 ** (failed_attempt - 1)


#: Start ``event`` now: ``None`` if it was placed, else the throttle reason.
#: The result of a placed event must reach :meth:`EventQueue.finished`.
StartFn = Callable[[QueuedEvent], "str | None"]
#: Record ``event`` as finally throttled with that reason.
GiveUpFn = Callable[[QueuedEvent, str], None]


class EventQueue:
    """Events of one function in arrival order; retries come back after their delay."""

    def __init__(self, fn: FunctionConfig) -> None:
        self.fn = fn
        self._queue: asyncio.Queue[QueuedEvent] = asyncio.Queue()
        self._retry_timers: set[asyncio.TimerHandle] = set()
        self._closed = False

    def put(self, request_id: str, request: InvocationRequest) -> None:
        """Queue a new event (its first attempt)."""
        self._queue.put_nowait(QueuedEvent(request_id, request))

    def finished(self, event: QueuedEvent, result: InvocationResult) -> None:
        """An attempt ended: schedule the next one if it failed and retries are left."""
        if self._closed or result.outcome not in RETRIED_OUTCOMES:
            return
        delay_s = retry_delay_s(self.fn, event.attempt)
        if delay_s is None:
            return
        handle: asyncio.TimerHandle | None = None

        def requeue() -> None:
            if handle is not None:
                self._retry_timers.discard(handle)
            self._queue.put_nowait(replace(event, attempt=event.attempt + 1))

        handle = asyncio.get_running_loop().call_later(delay_s, requeue)
        self._retry_timers.add(handle)

    async def run(self, start: StartFn, give_up: GiveUpFn) -> None:
        """Run queued events in order, forever (cancel the task to stop)."""
        try:
            while True:
                event = await self._queue.get()
                delay_s = THROTTLE_FIRST_DELAY_S
                reason = start(event)
                tries = 1
                while reason is not None and tries < THROTTLE_MAX_TRIES:
                    await asyncio.sleep(delay_s)
                    delay_s = min(THROTTLE_MAX_DELAY_S, delay_s * 2)
                    reason = start(event)
                    tries += 1
                if reason is not None:
                    log.info("event %s of %s throttled %d times, given up (%s)",
                             event.request_id, self.fn.name, tries, reason)
                    give_up(event, reason)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the retries still waiting, schedule no more (the emulator is stopping)."""
        self._closed = True
        for handle in self._retry_timers:
            handle.cancel()
        self._retry_timers.clear()
