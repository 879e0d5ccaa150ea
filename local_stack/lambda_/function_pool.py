"""One function's environments and counters: the LIFO of warm environments.

Lambda hands a request to the most recently used idle environment (so a few
environments stay hot and the rest age out): the idle list is a stack. Counts
by state are kept incrementally so concurrency checks cost nothing per request.

Provisioned environments (``provisioned_concurrency``) wait on a stack of
their own, taken first, so that on-demand environments only serve the
spillover, as on Lambda. After a deploy (:mod:`.provisioning`) the previous
version's idle environments wait in ``superseded``: alive, frozen, still
connected, never handed a request again, until the reaper takes them.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from connstorm import metric_names as names
from connstorm.local_stack.lambda_.environment import (
    BUSY,
    DEAD,
    FROZEN,
    IDLE,
    INITIALIZING,
    STATES,
    STOPPING,
    Environment,
)
from connstorm.local_stack.lambda_.event_queue import EventQueue
from connstorm.local_stack.lambda_.scaling import TokenBucket
from connstorm.local_stack.lambda_.vanished import VanishedCount
from connstorm.local_stack.lambda_.vpc import VpcAttachment
from connstorm.local_stack.lambda_.zygote_client import ZygoteClient
from connstorm.scenario import FunctionConfig

#: Stats keys, as the ``emulator`` sample row of ``docs/run-folder.md`` names them.
STAT_KEYS = names.EMULATOR_STAT_KEYS


class FunctionPool:
    """A function's environments (by id), its idle stack, buckets, event queue and counters."""

    def __init__(self, fn: FunctionConfig, bucket: TokenBucket, base_env: dict[str, str],
                 rate_bucket: TokenBucket | None = None) -> None:
        self.fn = fn
        self.bucket = bucket
        #: The request-rate limit's bucket of invocations (shared by the unreserved
        #: functions), or ``None`` when the function's request rate is not limited.
        self.rate_bucket = rate_bucket
        self.base_env = base_env
        self.zygote: ZygoteClient | None = None
        self.envs: dict[str, Environment] = {}
        self.idle: list[Environment] = []
        #: Busy environments whose invocation has its answer but whose runtime has not
        #: asked for the next event yet (a few hundred microseconds).
        self.finishing: list[Environment] = []
        #: When sandboxes were reset by a timeout or crash (oldest first): each is
        #: re-initialised by the next invocation that finds no idle environment, as a
        #: suppressed init, with no scaling token (the sandbox still exists on AWS).
        self.resets: list[float] = []
        self.counts: Counter[str] = Counter(dict.fromkeys(STATES, 0))
        self.events = EventQueue(fn)
        self.reaped = 0
        self.concurrency_peak = 0
        self.invocations = 0
        self.cold_starts = 0
        self.throttles = 0
        self.timeouts = 0
        self.errors = 0
        self.errors_by_kind: Counter[str] = Counter()
        #: VPC state (``fn.vpc``), else None.
        self.vpc = VpcAttachment(fn.vpc) if fn.vpc is not None else None
        #: Idle provisioned environments (taken before ``idle``).
        self.provisioned_idle: list[Environment] = []
        #: Idle environments of an earlier version: frozen, connected, never used again.
        self.superseded: list[Environment] = []
        #: The version new environments run; each deploy adds one (AWS numbers from 1).
        self.generation = 1
        self.deploys = 0
        self.provisioned_invocations = 0
        self.spillover_invocations = 0
        self.scheduled_invocations = 0
        #: Invocations refused with an AWS error other than a throttle (VPC).
        self.rejections = 0
        #: Connections of reaped environments the servers still see open (:mod:`.vanished`).
        self.vanished = VanishedCount()

    @property
    def concurrency(self) -> int:
        """Busy plus initializing environments: what Lambda counts as concurrency."""
        return self.counts[BUSY] + self.counts[INITIALIZING]

    def set_state(self, env: Environment, state: str) -> None:
        """Move ``env`` to ``state``, keeping the counts and the peak right."""
        self.counts[env.state] -= 1
        self.counts[state] += 1
        env.state = state
        if state in (BUSY, INITIALIZING):
            self.concurrency_peak = max(self.concurrency_peak, self.concurrency)

    def add(self, env: Environment) -> None:
        """Register a new (initializing) environment."""
        self.envs[env.env_id] = env
        self.counts[env.state] += 1
        self.concurrency_peak = max(self.concurrency_peak, self.concurrency)

    def pop_idle(self) -> Environment | None:
        """The most recently parked environment that can take an event, if any.

        Provisioned ones first: Lambda spills over to on-demand ones only when
        every provisioned environment is busy.
        """
        while self.provisioned_idle:
            env = self.provisioned_idle.pop()
            if env.state in (FROZEN, IDLE) and env.next_conn is not None \
                    and env.next_conn.waiting_next:
                return env
        while self.idle:
            env = self.idle.pop()
            if env.state in (FROZEN, IDLE) and env.next_conn is not None \
                    and env.next_conn.waiting_next:
                return env
        return None

    def pop_finishing(self) -> Environment | None:
        """The most recent finishing environment with nothing queued on it, if any."""
        max_s = self.fn.max_lifetime_s
        while self.finishing:
            env = self.finishing.pop()
            if max_s is not None and time.monotonic() - env.spawned >= max_s:
                continue  # retired when it asks for its next event
            if env.state == BUSY and env.invocation is not None and env.invocation.done \
                    and env.generation == self.generation:
                return env
        return None

    def take_reset(self, now: float) -> bool:
        """Take the most recently reset sandbox, if one has not outlived its idle lifetime."""
        resets = self.resets
        while resets and now - resets[0] >= self.fn.idle_lifetime_s:
            resets.pop(0)
        if resets:
            resets.pop()
            return True
        return False

    def unfinish(self, env: Environment) -> None:
        """Take ``env`` off the finishing list."""
        with contextlib.suppress(ValueError):
            self.finishing.remove(env)

    def unpark(self, env: Environment) -> None:
        """Take ``env`` off the idle stacks (reaped, killed, or died)."""
        for stack in (self.idle, self.provisioned_idle, self.superseded):
            with contextlib.suppress(ValueError):
                stack.remove(env)
                return

    def stats(self) -> dict[str, Any]:
        """This function's counters, keyed as ``STAT_KEYS``."""
        alive = sum(n for s, n in self.counts.items() if s != DEAD)
        return {
            "env_initializing": self.counts[INITIALIZING],
            "env_busy": self.counts[BUSY],
            "env_frozen": self.counts[FROZEN],
            "env_idle": self.counts[IDLE],
            "env_stopping": self.counts[STOPPING],
            "env_total": alive,
            "env_reaped": self.reaped,
            "concurrency": self.concurrency,
            "concurrency_peak": self.concurrency_peak,
            "invocations": self.invocations,
            "cold_starts": self.cold_starts,
            "throttles": self.throttles,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "errors_by_kind": dict(self.errors_by_kind),
            # The current version's (an earlier version's count as superseded).
            "provisioned": sum(1 for e in self.envs.values()
                               if e.provisioned and e.generation == self.generation
                               and e.state not in (STOPPING, DEAD)),
            "provisioned_busy": sum(1 for e in self.envs.values()
                                    if e.provisioned and e.generation == self.generation
                                    and e.state == BUSY),
            "provisioned_invocations": self.provisioned_invocations,
            "spillover_invocations": self.spillover_invocations,
            "superseded": sum(1 for e in self.envs.values()
                              if e.generation != self.generation
                              and e.state not in (STOPPING, DEAD)),
            "deploys": self.deploys,
            "scheduled_invocations": self.scheduled_invocations,
            "rejections": self.rejections,
            names.VANISHED_CONNECTIONS: self.vanished.connections,
            names.VANISHED_ENVIRONMENTS: self.vanished.environments,
            "version": self.generation,
            "vpc": self.vpc.stats() if self.vpc is not None else None,
        }


def aggregate_stats(pools: Mapping[str, FunctionPool], concurrency_peak: int) -> dict[str, Any]:
    """Totals over ``pools`` plus each function's own under ``functions``.

    ``concurrency_peak`` is the emulator's (the peak of the sum), not a sum of peaks.
    """
    per = {name: pool.stats() for name, pool in pools.items()}
    total: dict[str, Any] = dict.fromkeys(STAT_KEYS, 0)
    kinds: Counter[str] = Counter()
    for stats in per.values():
        kinds.update(stats["errors_by_kind"])
        for key in STAT_KEYS:
            if key not in ("errors_by_kind", "concurrency_peak"):
                total[key] += stats[key]
    total["errors_by_kind"] = dict(kinds)
    total["concurrency_peak"] = concurrency_peak
    return {"t": time.time(), **total, "functions": per}
