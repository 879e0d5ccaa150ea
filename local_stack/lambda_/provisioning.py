"""Environments made ahead of requests, deploys, and what an environment leaves behind.

Three moments around the steady state that change how many connections a
function holds (AWS Lambda Developer Guide, "Configuring provisioned concurrency for a
function"; "Understanding the Lambda execution environment lifecycle"; "Giving
Lambda functions access to resources in an Amazon VPC"):

* **Provisioned concurrency** (``provisioned_concurrency = N``): N environments
  are initialised when the emulator starts (after a ``hyperplane`` function's
  ``Pending`` window, as Lambda allocates provisioned concurrency only on an
  ``Active`` function), with ``AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency``
  (on-demand ones get ``on-demand``). The emulator's start waits for their
  Init, so they exist, connected, before the first request; their Init takes
  no scaling token, is no request's cold start, and is not under the 10 s
  on-demand limit (:func:`init_limit_s`). They are taken before any
  on-demand environment and never reaped; one that dies (timeout, crash,
  failed Init) is replaced, as Lambda keeps the allocation. Invocations that
  run on on-demand environments of such a function are counted as
  ``spillover_invocations`` (CloudWatch's
  ``ProvisionedConcurrencySpilloverInvocations``), the others as
  ``provisioned_invocations``.
* **Deploys** (:meth:`Provisioning.deploy`, ``POST /_connstorm/functions/{name}/deploy``):
  a new version is published; from then on requests go to new environments
  (cold starts, new connections) while the previous version's environments stay
  alive, frozen and connected, until the reaper takes them after
  ``idle_lifetime_s`` (how soon AWS reclaims them is not documented); then they
  vanish and their connections linger at the server (:mod:`.vanished`): the
  connection surge, and its tail, users see after a deploy. Those busy
  at the deploy finish their invocation first. A function with provisioned
  concurrency gets a fresh set for the new version. The new environments fork
  from the same zygote (the old ones are its children too); their Init imports
  the handler afresh, so code changed on disk takes effect. Invocations are
  still answered as ``$LATEST``, the unqualified function.
* **What a dead environment gives back**: its subnet address (``per_environment``
  VPC model), its CPU cgroup, and for a provisioned one its place, refilled.

:class:`Provisioning` is a mixin of :class:`~connstorm.local_stack.lambda_.emulator.Emulator`,
as :mod:`.scheduler` says why.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from connstorm.local_stack.lambda_.environment import DEAD, INITIALIZING, STOPPING, Environment
from connstorm.local_stack.lambda_.function_pool import FunctionPool

if TYPE_CHECKING:
    from connstorm.local_stack.lambda_.cpu_shares import CpuShares
    from connstorm.scenario import FunctionConfig, LambdaConfig

log = logging.getLogger(__name__)

#: Wait before replacing a provisioned environment that died (a failing Init must not spin).
REPLACE_DELAY_S = 1.0
#: Slack over the Init limit the start waits for the provisioned environments' Init.
PROVISION_SLACK_S = 5.0
#: The shortest Init limit of a provisioned environment (see :func:`init_limit_s`).
PROVISIONED_INIT_MIN_S = 130.0


def init_limit_s(account: LambdaConfig, fn: FunctionConfig, *, provisioned: bool) -> float:
    """How long an environment's Init may run before it times out.

    On demand: ``[lambda] init_timeout_s`` (Lambda's 10 s). Provisioned ones are
    not under that limit: AWS, "Understanding the Lambda execution environment
    lifecycle", "Init phase": "The 10-second timeout doesn't apply to functions
    that are using provisioned concurrency [...] The time limit is 130 seconds or
    the configured function timeout (maximum 900 seconds), whichever is higher."
    """
    if provisioned:
        return max(PROVISIONED_INIT_MIN_S, fn.timeout_s)
    return account.init_timeout_s


class Provisioning:
    """Provisioned environments, deploys, attach delays (a mixin of ``Emulator``)."""

    # The emulator's state this part reads and writes (set in Emulator.__init__).
    account: LambdaConfig
    pools: dict[str, FunctionPool]
    cpu_shares: CpuShares | None
    _stopping: bool

    if TYPE_CHECKING:
        # The environment lifecycle's part (:mod:`.lifecycle`).
        def _new_environment(self, pool: FunctionPool) -> Environment: ...
        def _launch(self, pool: FunctionPool, env: Environment) -> None: ...
        def _on_env_dead(self, env: Environment, status: int) -> None: ...

    # ------------------------------------------------------------ launching

    def _attach_and_launch(self, pool: FunctionPool, env: Environment) -> None:
        """Launch ``env``, after its network interface is attached (``per_environment``)."""
        vpc = pool.vpc
        if env.subnet is None or vpc is None or vpc.attach_s <= 0:
            self._launch(pool, env)
            return
        asyncio.get_running_loop().call_later(vpc.attach_s, self._attached, pool, env)

    def _attached(self, pool: FunctionPool, env: Environment) -> None:
        if env.state == DEAD:
            return
        if env.state != INITIALIZING or self._stopping:
            self._on_env_dead(env, -signal.SIGKILL)  # retired before it ever ran
            return
        self._launch(pool, env)

    def _launch_provisioned(self, pool: FunctionPool) -> Environment | None:
        """Start one provisioned environment of the function's current version."""
        subnet = None
        if pool.vpc is not None and pool.vpc.per_environment:
            subnet = pool.vpc.take()
            if subnet is None:
                log.warning("%s: no free address in its subnets for a provisioned environment",
                            pool.fn.name)
                return None
        env = self._new_environment(pool)
        env.provisioned = True
        env.subnet = subnet
        self._attach_and_launch(pool, env)
        return env

    async def _provision(self, pool: FunctionPool) -> list[Environment]:
        """Start the function's provisioned environments once it is ``Active``."""
        vpc = pool.vpc
        while vpc is not None and vpc.pending():
            await asyncio.sleep(max(0.01, vpc.pending_until - time.monotonic()))
        started = [self._launch_provisioned(pool)
                   for _ in range(pool.fn.provisioned_concurrency)]
        return [env for env in started if env is not None]

    async def _provision_all(self) -> None:
        """Initialise every function's provisioned environments; return when their Init ended.

        Bounded: Init has its limit (:func:`init_limit_s`); an environment still
        initialising after that (plus attach and pending time) is left to its own timers.
        """
        wanted = [p for p in self.pools.values() if p.fn.provisioned_concurrency]
        if not wanted:
            return
        started = await asyncio.gather(*(self._provision(p) for p in wanted))
        envs = [env for group in started for env in group]
        attach_s = max((p.vpc.attach_s for p in wanted if p.vpc is not None), default=0.0)
        limit_s = max(init_limit_s(self.account, p.fn, provisioned=True) for p in wanted)
        deadline = time.monotonic() + limit_s + attach_s + PROVISION_SLACK_S
        while any(e.state == INITIALIZING for e in envs) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        ready = sum(1 for e in envs if e.state not in (INITIALIZING, DEAD))
        log.info("provisioned concurrency: %d of %d environments initialised", ready,
                 sum(p.fn.provisioned_concurrency for p in wanted))

    # ------------------------------------------------------------ deploys

    def deploy(self, name: str) -> dict[str, Any]:
        """Publish a new version of ``name``; ``KeyError`` for an unknown function.

        Returns ``{"function", "version", "superseded"}``: the new version number
        (the stack starts at 1) and how many environments of earlier versions
        are alive now (they linger until reaped).
        """
        pool = self.pools[name]
        pool.generation += 1
        pool.deploys += 1
        pool.superseded.extend(pool.provisioned_idle)
        pool.superseded.extend(pool.idle)
        pool.provisioned_idle.clear()
        pool.idle.clear()
        pool.resets.clear()  # a reset sandbox of the old version is not re-initialised
        for _ in range(pool.fn.provisioned_concurrency):
            self._launch_provisioned(pool)
        old = sum(1 for e in pool.envs.values()
                  if e.generation != pool.generation and e.alive)
        log.info("%s: deployed version %d; %d environments of earlier versions linger",
                 name, pool.generation, old)
        return {"function": name, "version": pool.generation, "superseded": old}

    # ------------------------------------------------------------ faults

    def kill_environments(self, name: str, count: int) -> dict[str, Any]:
        """SIGKILL up to ``count`` live environments of ``name`` (the timeline's
        ``kill_environments``); ``KeyError`` for an unknown function.

        Idle (frozen) environments go first, then busy ones, newest first within
        each: the kernel closes their database sockets, a busy one's invocation
        ends as a crash (``Runtime.ExitError``). The zygote reports each death and
        the usual bookkeeping follows, as for any crash. Returns
        ``{"function", "killed", "alive"}``.
        """
        pool = self.pools[name]
        live = [e for e in pool.envs.values()
                if e.alive and e.state != STOPPING and e.pid is not None]
        live.sort(key=lambda e: (e.invocation is not None, -e.last_used))
        chosen = live[:max(0, count)]
        for env in chosen:
            env.signal_group(signal.SIGKILL)
        log.info("%s: killed %d environments on request", name, len(chosen))
        return {"function": name, "killed": len(chosen), "alive": len(live) - len(chosen)}

    # ------------------------------------------------------------ endings

    def _released(self, pool: FunctionPool, env: Environment) -> None:
        """``env`` is gone: free its address and cgroup, refill a provisioned place."""
        if env.subnet is not None and pool.vpc is not None:
            pool.vpc.release(env.subnet)
            env.subnet = None
        if env.cgroup is not None and self.cpu_shares is not None:
            self.cpu_shares.remove(env.cgroup)
            env.cgroup = None
        if env.provisioned and env.generation == pool.generation and not self._stopping:
            asyncio.get_running_loop().call_later(REPLACE_DELAY_S, self._refill, pool)

    def _refill(self, pool: FunctionPool) -> None:
        if self._stopping:
            return
        have = sum(1 for e in pool.envs.values()
                   if e.provisioned and e.generation == pool.generation and e.alive
                   and e.state != STOPPING)
        for _ in range(pool.fn.provisioned_concurrency - have):
            self._launch_provisioned(pool)
