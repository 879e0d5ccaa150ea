"""``report.html``, ``junit.xml`` and ``summary.md`` for a finished run, and the GitHub
step summary.

The reports package renders them (``connstorm.reports.render.render_all``); when it is not
importable or fails, the minimal renderings below keep CI working: one JUnit
test case per threshold and per comparison with the baseline, failed ones with a
``<failure>`` saying by how much.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast
from xml.sax.saxutils import escape, quoteattr

from connstorm.loadtests.orchestrator.regression import describe as describe_comparison
from connstorm.loadtests.orchestrator.regression import judged
from connstorm.loadtests.orchestrator.thresholds import Verdict, describe
from connstorm.run_folder import JUNIT_FILE, MARKDOWN_FILE, write_atomic

log = logging.getLogger(__name__)

ENV_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"

Renderer = Callable[[Mapping[str, Any]], str]


def _renderer(module: str) -> Renderer | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    render = getattr(mod, "render", None)
    return cast(Renderer, render) if callable(render) else None


def _comparisons(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    section = summary.get("baseline")
    if not isinstance(section, Mapping):
        return []
    return [c for v in section.get("variants") or [] for c in v.get("comparisons") or []]


def junit_xml(summary: Mapping[str, Any]) -> str:
    """Minimal JUnit XML: a suite per scenario, a test case per threshold and comparison."""
    verdicts: list[Verdict] = list(summary.get("thresholds") or [])
    cases = [("thresholds", v["name"], bool(v["passed"]), describe(v)) for v in verdicts]
    cases += [("baseline", f"{c.get('variant')}: {c.get('name')}", bool(c.get("passed")),
               describe_comparison(c)) for c in _comparisons(summary)]
    # A timing shown but not judged ([thresholds.regression] unset) is a skipped case.
    skipped = {f"{c.get('variant')}: {c.get('name')}" for c in _comparisons(summary)
               if not judged(c)}
    failures = sum(1 for case in cases if not case[2])
    name = str(summary.get("scenario", "connstorm"))
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuites name="connstorm" tests="{len(cases)}" failures="{failures}">',
             f'  <testsuite name={quoteattr(name)} tests="{len(cases)}" '
             f'failures="{failures}" skipped="{len(skipped)}">']
    for group, case_name, passed, text in cases:
        case = (f'    <testcase classname={quoteattr(group + "." + name)} '
                f'name={quoteattr(case_name)}')
        if group == "baseline" and case_name in skipped:
            lines += [case + ">", f"      <skipped message={quoteattr(text)}/>",
                      "    </testcase>"]
        elif passed:
            lines.append(case + "/>")
        else:
            lines.append(case + ">")
            lines.append(f"      <failure message={quoteattr(text)}>{escape(text)}</failure>")
            lines.append("    </testcase>")
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


def markdown(summary: Mapping[str, Any]) -> str:
    """Minimal markdown: verdict, thresholds, and the variant figures."""
    passed = summary.get("passed")
    out = [f"## connstorm: {summary.get('scenario')} — {'PASSED' if passed else 'FAILED'}", ""]
    verdicts: list[Verdict] = list(summary.get("thresholds") or [])
    if verdicts:
        out += ["| threshold | limit | actual | result |", "|---|---|---|---|"]
        out += [f"| {v['name']} | {v['limit']} | {v['actual']} | "
                f"{'pass' if v['passed'] else '**FAIL**'} |" for v in verdicts]
        out.append("")
    compared = _comparisons(summary)
    if compared:
        out += ["| compared with the baseline | result |", "|---|---|"]
        out += [f"| {describe_comparison(c)} | "
                f"{'not judged' if not judged(c) else 'pass' if c.get('passed') else '**FAIL**'} |"
                for c in compared]
        out.append("")
    for variant in summary.get("variants") or []:
        out += [f"### {variant.get('name')}", "", "| figure | value |", "|---|---|"]
        out += [f"| {k} | {variant[k]} |" for k in variant if k != "name"]
        out.append("")
    return "\n".join(out)


def write_reports(run_dir: Path, summary: Mapping[str, Any], *,
                  step_summary: bool = True) -> dict[str, Path]:
    """Write ``report.html``, ``junit.xml`` and ``summary.md``; append the markdown to the
    GitHub step summary (unless ``step_summary`` is false: a repro's variants leave it
    to the comparison).

    ``connstorm.reports.render.render_all`` renders all three from the run folder; if the reports
    package is missing or fails, the CI files are still written (minimal ones),
    since the CI verdict must not depend on the HTML report.
    """
    written: dict[str, Path] = {}
    try:
        from connstorm.reports.render import render_all

        for path in render_all(run_dir):
            written[path.name] = path
    except Exception as exc:  # ImportError, ReportError, or a bug in the renderer
        log.warning("reports could not render %s (%s); writing minimal %s and %s",
                    run_dir, exc, JUNIT_FILE, MARKDOWN_FILE)
    for filename, module, fallback in ((JUNIT_FILE, "connstorm.reports.junit", junit_xml),
                                       (MARKDOWN_FILE, "connstorm.reports.markdown", markdown)):
        if filename in written:
            continue
        render = _renderer(module) or fallback
        try:
            text = render(summary)
        except Exception:  # a broken renderer must not cost the CI verdict
            log.exception("%s failed; writing the minimal %s", module, filename)
            text = fallback(summary)
        written[filename] = write_atomic(run_dir / filename, text)
    if step_summary:
        append_step_summary(written[MARKDOWN_FILE])
    return written


def append_step_summary(markdown_file: Path) -> None:
    """Append a ``summary.md`` to GitHub Actions' job summary, when running there."""
    target = os.environ.get(ENV_STEP_SUMMARY)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(markdown_file.read_text(encoding="utf-8") + "\n")
