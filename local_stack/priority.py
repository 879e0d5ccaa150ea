"""Real-time CPU priority for the loops AWS runs on hosts of their own.

Two loops ask for it: the Lambda emulator's server (below) and the RDS Proxy
stand-in's (:mod:`connstorm.local_stack.rds_proxy.proxy`, ``[rds_proxy]
realtime_priority``), for the same reason: on AWS neither shares a CPU with the
functions, the load generator or the database.

On AWS the invoke path (API Gateway, the Lambda service, the worker's Runtime
API) never shares a CPU with a function's sandbox. Here it does: one emulator
process and every environment share the machine's cores. At an ordinary
priority each environment the emulator wakes (an event written, a SIGCONT, a
``202``) preempts it at once, so with 32 busy environments on 2 cores the
emulator spends its time queued behind them. Requests then wait in its socket
buffers, cold starts and throttles come late, and ``Duration`` grows with the
emulator's queueing: contention AWS does not have. Measured with
``benchmarks/emulator_warm.py``: about a quarter fewer invocations per second
at 32 clients, with the machine up to a fifth idle.

So the server's event-loop thread asks for ``SCHED_FIFO`` at the lowest
real-time priority. The environments keep the ordinary policy
(``SCHED_RESET_ON_FORK``: nothing forked from the emulator inherits it), so
handlers still compete fairly with PostgreSQL, PgBouncer and Locust, as a
function on a busy AWS host would with its neighbours. The kernel's real-time
throttling (``sched_rt_runtime_us``, 95 % by default) and its fair server keep
ordinary processes running even if the emulator were to spin.

Only a process with ``CAP_SYS_NICE`` (or an ``RLIMIT_RTPRIO`` above 0) may ask,
and only where it may use two CPUs or more; otherwise the emulator runs at the
ordinary priority and says why in its log and its stats.
``[lambda] realtime_priority = false`` turns it off.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: The values of the stats' ``scheduling`` key.
REALTIME = "realtime"
NORMAL = "normal"


def raise_priority(who: str = "emulator", others: str = "environments") -> str:
    """Put the calling thread on ``SCHED_FIFO`` 1, children excluded; what it got.

    ``who`` and ``others`` only name the caller and what stays at the ordinary
    priority in the log line (the RDS Proxy stand-in uses this too).
    """
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        # On one CPU a busy real-time emulator would leave everything else,
        # the environments and the user's shell included, the 5 % the kernel keeps.
        log.info("%s scheduling: normal (real-time priority needs 2 CPUs; this "
                 "process may use %d)", who, cpus)
        return NORMAL
    try:
        # Linux applies this to the calling thread alone (sched_setscheduler(2)).
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(1))
    except OSError as exc:
        log.info("%s scheduling: normal (real-time priority not permitted: %s)",
                 who, exc.strerror or exc)
        return NORMAL
    log.info("%s scheduling: realtime (SCHED_FIFO 1; %s stay SCHED_OTHER)", who, others)
    return REALTIME


__all__ = ["NORMAL", "REALTIME", "raise_priority"]
