"""Compare a run with its baseline: one comparison per figure, variant by variant.

Pure logic over ``summary.json`` variant entries, like :mod:`.thresholds`, so
``connstorm run``, ``repro`` and ``live`` judge a change the same way and the
reports only render what ``summary.json`` says. What counts as worse is
``[thresholds.regression]`` (:class:`~connstorm.sections.thresholds.RegressionConfig`).

The figures compared, each against the baseline's variant of the same name:

- peaks that must not rise by more than their percentage: PostgreSQL connections,
  the RDS Proxy's database and pinned connections, execution environments (whole
  numbers: the allowed value is rounded up);
- timings, judged only when their percentage is set: p95 and p99 response times
  (must not rise by more than ``p95_pct``, ``p99_pct``) and requests per second
  (must not fall by more than ``rps_pct``). Unset (the default) they are shown
  beside the baseline's and never fail a run: two runs of the same code on a
  shared machine moved them by up to 3x while every connection figure stayed
  the same (docs/baselines.md), so a default tolerance fails CI on noise;
- errors by kind: a kind the baseline did not have (``new_error_kinds``), or a
  kind's share of the requests rising by more than ``errors_pct`` (a share, so a
  longer or busier run does not count as worse by itself);
- RDS Proxy pin reasons the baseline did not have (``new_pin_reasons``).

A figure neither side has (no proxy in a direct run) is not compared; a figure
the run lacks where the baseline had it (no latency: no requests) is a
regression, since a comparison that cannot be made must not pass silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connstorm.sections.thresholds import RegressionConfig


@dataclass(frozen=True)
class Figure:
    """One figure compared: its ``summary.json`` key and its tolerance key."""

    key: str
    tolerance: str
    #: True when more is worse (peaks, latencies); False for requests/s.
    higher_is_worse: bool = True
    #: Whole numbers: the allowed value is rounded to a whole number.
    whole: bool = True


FIGURES: tuple[Figure, ...] = (
    Figure("peak_db_connections", "peak_db_connections_pct"),
    Figure("peak_proxy_database_connections", "peak_proxy_database_connections_pct"),
    Figure("peak_pinned_connections", "peak_pinned_connections_pct"),
    Figure("peak_environments", "peak_environments_pct"),
    Figure("p95_ms", "p95_pct", whole=False),
    Figure("p99_ms", "p99_pct", whole=False),
    Figure("rps", "rps_pct", higher_is_worse=False, whole=False),
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _change_pct(baseline: float, actual: float) -> float | None:
    if baseline == 0:
        return None
    return round((actual - baseline) / baseline * 100.0, 1)


def _counts(entry: Mapping[str, Any], key: str) -> dict[str, float]:
    raw = entry.get(key)
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): n for k, v in raw.items() if (n := _number(v))}


def compare_figure(figure: Figure, current: Mapping[str, Any], baseline: Mapping[str, Any],
                   config: RegressionConfig) -> dict[str, Any] | None:
    """The comparison of one figure, or None when neither side has it."""
    before, after = _number(baseline.get(figure.key)), _number(current.get(figure.key))
    if not before and not after:
        return None
    tolerance = getattr(config, figure.tolerance)
    entry: dict[str, Any] = {"name": figure.key, "kind": "figure", "baseline": before,
                             "actual": after,
                             "tolerance_pct": None if tolerance is None else float(tolerance),
                             "bound": "at most" if figure.higher_is_worse else "at least"}
    if tolerance is None:  # not judged (timings by default): shown beside the baseline's
        entry.update(limit=None, passed=True, judged=False,
                     change_pct=(None if before is None or after is None
                                 else _change_pct(before, after)))
        return entry
    pct = float(tolerance)
    if before is None:  # the baseline cannot say: nothing to hold the run to
        entry.update(limit=None, change_pct=None, passed=True)
        return entry
    if figure.higher_is_worse:
        limit = before * (1 + pct / 100.0)
        limit = float(math.ceil(limit - 1e-9)) if figure.whole else round(limit, 3)
    else:
        limit = round(before * (1 - pct / 100.0), 3)
    passed = after is not None and (after <= limit if figure.higher_is_worse else after >= limit)
    entry.update(limit=limit, passed=passed,
                 change_pct=None if after is None else _change_pct(before, after))
    return entry


def compare_errors(current: Mapping[str, Any], baseline: Mapping[str, Any],
                   config: RegressionConfig) -> list[dict[str, Any]]:
    """One comparison per error kind either side has: new kinds, and shares that rose."""
    now, before = _counts(current, "errors_by_kind"), _counts(baseline, "errors_by_kind")
    requests = _number(current.get("requests")) or 0.0
    base_requests = _number(baseline.get("requests")) or 0.0
    out: list[dict[str, Any]] = []
    for kind in sorted(set(now) | set(before)):
        count, base_count = now.get(kind, 0.0), before.get(kind, 0.0)
        share = count / requests if requests else None
        base_share = base_count / base_requests if base_requests else None
        entry: dict[str, Any] = {"name": f"errors: {kind}", "error_kind": kind,
                                 "baseline": base_count, "actual": count,
                                 "baseline_share": _round(base_share),
                                 "actual_share": _round(share), "bound": "at most"}
        if not base_count:
            entry.update(kind="new_error_kind", limit=0.0, tolerance_pct=None, change_pct=None,
                         passed=not config.new_error_kinds)
        else:
            limit = (base_share or 0.0) * (1 + config.errors_pct / 100.0)
            entry.update(kind="error_share", limit=_round(limit),
                         tolerance_pct=config.errors_pct,
                         change_pct=(None if share is None or not base_share
                                     else _change_pct(base_share, share)),
                         passed=share is None or share <= limit + 1e-12)
        out.append(entry)
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def compare_pins(current: Mapping[str, Any], baseline: Mapping[str, Any],
                 config: RegressionConfig) -> list[dict[str, Any]]:
    """One comparison per RDS Proxy pin reason the baseline did not have."""
    now, before = _counts(current, "pin_reasons"), _counts(baseline, "pin_reasons")
    return [{"name": f"new pin reason: {reason}", "kind": "new_pin_reason",
             "pin_reason": reason, "baseline": 0.0, "actual": count, "limit": 0.0,
             "bound": "at most", "tolerance_pct": None, "change_pct": None,
             "passed": not config.new_pin_reasons}
            for reason, count in sorted(now.items()) if reason not in before]


def compare_variant(current: Mapping[str, Any], baseline: Mapping[str, Any],
                    config: RegressionConfig) -> list[dict[str, Any]]:
    """Every comparison of one variant with the baseline's variant of the same name."""
    name = str(current.get("name", ""))
    found = [c for figure in FIGURES
             if (c := compare_figure(figure, current, baseline, config)) is not None]
    found += compare_errors(current, baseline, config)
    found += compare_pins(current, baseline, config)
    for comparison in found:
        comparison["variant"] = name
        comparison["line"] = describe(comparison)
    return found


def baseline_section(path: str, baseline: Mapping[str, Any],
                     compared: Sequence[tuple[str, list[dict[str, Any]]]], *,
                     copied_to: str | None) -> dict[str, Any]:
    """``summary.json``'s ``baseline``: where it came from and each variant's comparisons."""
    variants = [{"name": name, "passed": all(c["passed"] for c in items), "comparisons": items}
                for name, items in compared]
    regressions = sum(1 for _, items in compared for c in items if not c["passed"])
    return {"path": path, "scenario": baseline.get("scenario"),
            "schema_version": baseline.get("schema_version"), "copied_to": copied_to,
            "passed": regressions == 0, "regressions": regressions, "variants": variants}


def regressions(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failed comparisons of a summary's ``baseline`` section (none without one)."""
    section = summary.get("baseline")
    if not isinstance(section, Mapping):
        return []
    return [c for v in section.get("variants") or [] for c in v.get("comparisons") or []
            if not c.get("passed")]


def _fmt(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "no data"
    if number.is_integer():
        return str(int(number))
    if abs(number) < 1:
        return f"{number:.3g}"
    return f"{number:.1f}".rstrip("0").rstrip(".")


def _pct(value: float | None) -> str:
    return f"{value * 100:.1f} %" if value is not None else "–"


def judged(c: Mapping[str, Any]) -> bool:
    """Whether a comparison was held to a tolerance (False: a timing shown, not judged)."""
    return c.get("judged") is not False


def status_word(c: Mapping[str, Any]) -> str:
    """``PASS``, ``FAIL`` or ``INFO`` (not judged): how the terminal marks a comparison."""
    if not judged(c):
        return "INFO"
    return "PASS" if c.get("passed") else "FAIL"


def _tolerance_key(c: Mapping[str, Any]) -> str:
    name = c.get("name")
    return next((f.tolerance for f in FIGURES if f.key == name), "its percentage")


def describe(c: Mapping[str, Any]) -> str:
    """One line for a comparison, saying by how much a regression is worse."""
    status = "ok" if c.get("passed") else "REGRESSION"
    variant = f"{c.get('variant')}: " if c.get("variant") else ""
    kind = c.get("kind")
    if kind == "new_error_kind":
        return (f"{variant}new error kind {c.get('error_kind')}: {_fmt(c.get('actual'))} failed "
                f"requests, none in the baseline {status}")
    if kind == "new_pin_reason":
        return (f"{variant}new RDS Proxy pin reason \"{c.get('pin_reason')}\": "
                f"{_fmt(c.get('actual'))} sessions, none in the baseline {status}")
    change = c.get("change_pct")
    moved = f"{change:+g} %" if isinstance(change, int | float) else "new"
    if not judged(c):
        moved = f"{change:+g} %" if isinstance(change, int | float) else "–"
        return (f"{variant}{c.get('name')} {_fmt(c.get('actual'))}, baseline "
                f"{_fmt(c.get('baseline'))}: {moved} (not judged: [thresholds.regression] "
                f"{_tolerance_key(c)} unset)")
    allowed = f"{'+' if c.get('bound') == 'at most' else '-'}{_fmt(c.get('tolerance_pct'))} %"
    if kind == "error_share":
        return (f"{variant}{c.get('error_kind')} errors {_pct(c.get('actual_share'))} of requests "
                f"({_fmt(c.get('actual'))}), baseline {_pct(c.get('baseline_share'))} "
                f"({_fmt(c.get('baseline'))}): {moved} (allowed {allowed}) {status}")
    if c.get("limit") is None:
        return f"{variant}{c.get('name')} {_fmt(c.get('actual'))}: the baseline has no figure"
    if c.get("actual") is None:
        return f"{variant}{c.get('name')} no data, baseline {_fmt(c.get('baseline'))} {status}"
    bound = "≤" if c.get("bound") == "at most" else "≥"
    return (f"{variant}{c.get('name')} {_fmt(c.get('actual'))}, baseline "
            f"{_fmt(c.get('baseline'))}: {moved} (allowed {allowed}, {bound} "
            f"{_fmt(c.get('limit'))}) {status}")
