"""One variant of ``connstorm repro`` in a child process (see :mod:`.repro_jobs`).

    python -m connstorm.loadtests.orchestrator.repro_variant NAME --out DIR \
        [--preset P] [--quick] [--locustfile F]

Started ahead of its turn, it waits for a line ``go`` on its standard input
(end of input without it: the comparison stopped first, it ends at once). Then
it runs the variant exactly as the comparison defines it
(:func:`.repro.variant_scenario`) into ``DIR`` and leaves its ``summary.json``
there, which the parent reads. On its standard output it says ``loaded`` once
Locust has ended, so that the parent can start the next variant while this
one's stack stops.
Exit codes are connstorm's: 0 when the variant ran (its own thresholds failing
is its verdict, not an error), a :class:`~connstorm.errors.ConnstormError`'s
code with its one line on stderr, 130 on SIGINT and 143 on SIGTERM, after the
stack has stopped and what was measured is summarised.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import select
import sys
from collections.abc import Sequence
from pathlib import Path

from connstorm.console import output_console
from connstorm.errors import ConnstormError, ExitCode, ThresholdsFailedError
from connstorm.loadtests.orchestrator.repro_jobs import GO, LOADED
from connstorm.signals import Terminated, exit_on_sigterm, received_sigterm


def _say_loaded() -> None:
    """Tell the comparison that this variant's load is over (its stack stops next)."""
    with contextlib.suppress(OSError):
        sys.stdout.buffer.write(LOADED)
        sys.stdout.flush()


def _import_the_reports_while_waiting() -> None:
    """Import the report renderer (plotly: about 0.2 s) now, unless ``go`` is here already.

    Every variant but the first waits for its turn for seconds; rendering its own
    report is the last thing it does, which for the last variant is the end of
    the whole comparison. The first one is told to go at once: it goes.
    """
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if not ready:
        importlib.import_module("connstorm.reports.render")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one variant; the exit code says how it ended."""
    from connstorm.loadtests.orchestrator.repro import plan_for, variant_scenario, variants_for
    from connstorm.loadtests.orchestrator.run_options import RunOptions
    from connstorm.loadtests.orchestrator.runner import Run

    parser = argparse.ArgumentParser(prog="repro_variant")
    parser.add_argument("name")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="connections")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--locustfile", type=Path)
    args = parser.parse_args(argv)
    try:
        with exit_on_sigterm():
            chosen = {v.name: v for v in variants_for(quick=args.quick, preset=args.preset)}
            if args.name not in chosen:
                raise ConnstormError(f"no variant {args.name!r} in preset {args.preset!r}")
            scenario = variant_scenario(chosen[args.name],
                                        plan_for(args.preset, quick=args.quick))
            # The comparison's summary.md goes to the CI job summary, not each variant's.
            opts = RunOptions(scenario=scenario, run_dir=args.out, locustfile=args.locustfile,
                              step_summary=False,
                              on_load_end=_say_loaded)
            _import_the_reports_while_waiting()
            if sys.stdin.buffer.readline() != GO:
                return 0  # the comparison stopped before this variant's turn
            # Its own thresholds failing is the variant's verdict, in its summary.json.
            with contextlib.suppress(ThresholdsFailedError):
                Run(opts, output_console(quiet=True)).execute()
        if received_sigterm():
            raise Terminated()
    except ConnstormError as exc:
        sys.stderr.write(f"connstorm: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except Terminated:
        return int(ExitCode.TERMINATED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
