"""``connstorm ui`` as a person runs it: started, swarmed through its web UI, stopped.

Shared by the browser test of the live chart (``test_live_chart.py``) and the
script that regenerates the docs' screenshot (``scripts/docs_images.py``), so
the picture in the docs comes from the same real run the test checks.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


def get_json(url: str) -> Any:
    """GET ``url`` and parse its JSON."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


class UiRun:
    """``connstorm ui SCENARIO --out RUN_DIR ARGS``; a context manager that always stops it.

    >>> with UiRun(scenario, run_dir) as ui:
    ...     ui.swarm(users=40, spawn_rate=10)
    ...     ui.wait_for(lambda doc: doc["runs"]["rds_proxy"], timeout_s=60)
    """

    def __init__(self, scenario: str | Path, run_dir: Path, args: Sequence[str] = ()) -> None:
        self.argv = [sys.executable, "-m", "connstorm", "ui", str(scenario), "--out",
                     str(run_dir), *args]
        self.run_dir = run_dir
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""
        self.returncode: int | None = None
        self.stderr = ""

    def __enter__(self) -> UiRun:
        env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
        env["COLUMNS"] = "200"
        self.proc = subprocess.Popen(self.argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)
        try:
            self.base = self._wait_for_line(r"Locust web UI: (http://127\.0\.0\.1:\d+)", 180)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_for_line(self, pattern: str, timeout_s: float) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        seen = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if selector.select(timeout=0.5):
                line = self.proc.stdout.readline()
                seen.append(line)
                match = re.search(pattern, line)
                if match:
                    return match.group(1)
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s} s; "
                             f"output: {seen}")

    def swarm(self, users: int, spawn_rate: float, shape: str = "constant") -> None:
        """Press Start in the web UI (its HTTP API), against the stack's API URL."""
        stack = json.loads((self.run_dir / "stack.json").read_text())
        form = urllib.parse.urlencode({"user_count": users, "spawn_rate": spawn_rate,
                                       "host": stack["api_url"], "shape": shape}).encode()
        with urllib.request.urlopen(f"{self.base}/swarm", data=form, timeout=10) as answer:
            doc = json.loads(answer.read())
        if doc.get("success") is not True:
            raise AssertionError(f"swarm refused: {doc}")

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
        """Poll the chart's data (``/connstorm/samples.json``) until ``check`` holds."""
        deadline = time.monotonic() + timeout_s
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            doc = get_json(f"{self.base}/connstorm/samples.json")
            if check(doc):
                return doc
            time.sleep(1)
        raise AssertionError(f"the chart's data never got there in {timeout_s} s: "
                             f"runs={doc.get('runs')} pins={doc.get('pin_reasons')}")

    def stop(self) -> None:
        """SIGTERM (connstorm stops Locust and the stack, writes the summary); keep its exit."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _out, self.stderr = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, self.stderr = proc.communicate()
        self.returncode = proc.returncode
