"""``summary.json``'s ``lambda_lifecycle``: provisioned concurrency, deploys, schedules, VPC.

Figures from the ``emulator`` and ``postgres`` rows of ``samples.jsonl``, named
after the CloudWatch metrics they stand for where there is one:

* ``provisioned_concurrency``: environments the scenario provisions (all functions);
* ``baseline_db_connections``: application connections in the first ``postgres``
  sample, taken as the load starts: what provisioned (and any other already
  warm) environments hold before a single request;
* ``provisioned_utilization``: ``{"mean", "max"}`` of provisioned environments
  busy / provisioned environments over the samples
  (``ProvisionedConcurrencyUtilization``), ``null`` without provisioned concurrency;
* ``provisioned_invocations`` (``ProvisionedConcurrencyInvocations``),
  ``spillover_invocations`` (``ProvisionedConcurrencySpilloverInvocations``):
  invocations of functions with provisioned concurrency that ran on provisioned
  and on on-demand environments;
* ``deploys``, ``peak_superseded_environments`` (an earlier version's environments
  alive at once after a deploy), ``scheduled_invocations`` (``[[schedules]]``
  pings) and ``rejections`` (invocations a VPC function refused: ``Pending`` or
  out of subnet addresses);
* ``refused_while_vanished``: invocations that failed on ``too many clients``
  between two ``emulator`` samples of which the later still counted connections of
  reaped environments held open at the server (``vanished_connections``,
  docs/lambda-vanished.md): the refusals of the tail after a deploy or a scale-down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connstorm import error_kinds
from connstorm import metric_names as names
from connstorm.samples import Row
from connstorm.scenario import Scenario


def _ok(rows: Sequence[Row], collector: str) -> list[Row]:
    return [r for r in rows if r.get("collector") == collector and r.get("ok")]


def lifecycle_figures(rows: Sequence[Row], scenario: Scenario) -> dict[str, Any]:
    """The ``lambda_lifecycle`` entry of a variant (see the module docstring)."""
    emulator = _ok(rows, "emulator")
    postgres = _ok(rows, "postgres")
    last = emulator[-1] if emulator else {}
    ratios = [int(r.get("provisioned_busy") or 0) / int(r["provisioned"])
              for r in emulator if int(r.get("provisioned") or 0) > 0]
    provisioned = sum(fn.provisioned_concurrency for fn in scenario.functions)
    return {
        "provisioned_concurrency": provisioned,
        "baseline_db_connections": (int(postgres[0].get("db_app") or 0) if postgres else None),
        "provisioned_utilization": ({"mean": round(sum(ratios) / len(ratios), 4),
                                     "max": round(max(ratios), 4)} if ratios else None),
        "provisioned_invocations": int(last.get("provisioned_invocations") or 0),
        "spillover_invocations": int(last.get("spillover_invocations") or 0),
        "deploys": int(last.get("deploys") or 0),
        "peak_superseded_environments": max(
            (int(r.get("superseded") or 0) for r in emulator), default=0),
        "scheduled_invocations": int(last.get("scheduled_invocations") or 0),
        "rejections": int(last.get("rejections") or 0),
        "refused_while_vanished": _refused_while_vanished(emulator),
    }


def _refused_while_vanished(emulator: Sequence[Row]) -> int:
    """Refusals counted in an interval that ended with vanished connections still held."""
    total, before = 0, 0
    for row in emulator:
        kinds = row.get(names.ERRORS_BY_KIND)
        now = int(kinds.get(error_kinds.TOO_MANY_CONNECTIONS) or 0) \
            if isinstance(kinds, Mapping) else before
        if int(row.get(names.VANISHED_CONNECTIONS) or 0) > 0:
            total += max(0, now - before)
        before = now
    return total
