"""Headless Chromium driven over the DevTools protocol, to open reports as a user would.

A resource like the stack's servers: ``start()``/``stop()``, a context manager,
the death signal set in the child so it cannot outlive the test. It records
every console error, uncaught exception and network request of the page, which
is what "opens offline with no console errors" is checked against.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket  # websocket-client

from connstorm.local_stack.resource import Resource

_PR_SET_PDEATHSIG = 1
_DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_group(pgid: int, timeout_s: float = 10.0) -> None:
    """Kill what is left of Chromium's process group and wait for it to be gone.

    Its renderer and utility processes outlive the browser process for a moment and
    still write into the profile, whose removal then fails ("Directory not empty").
    """
    deadline = time.monotonic() + timeout_s
    while _running_in_group(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.05)


def _running_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, which write nothing, aside)."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def chromium_binary() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    """What happened while a page loaded."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Chromium(Resource):
    """One headless Chromium with one page; ``open(url)`` loads it and records events.

    ``timeout_s`` bounds every wait; it is generous because the test machines are
    shared and a 5 MB page with plotly.js can take a while to parse under load.
    """

    def __init__(self, *, timeout_s: float = 90.0, window: tuple[int, int] = (1400, 1000)) -> None:
        self.timeout_s = timeout_s
        self.window = window
        self._proc: subprocess.Popen[str] | None = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._ws: websocket.WebSocket | None = None
        self._ids = itertools.count(1)
        self._stderr: list[str] = []
        self.visit = PageVisit()

    def start(self) -> None:
        """Start the browser and attach to its first page."""
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="connstorm-chromium-")
        width, height = self.window
        self._proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             # Any fetch the page tries goes to a closed port and is also recorded.
             "--proxy-server=127.0.0.1:9", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--window-size={width},{height}",
             f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=_die_with_parent)
        browser_ws = self._wait_for_devtools()
        port = browser_ws.split(":")[2].split("/")[0]
        page_ws = self._page_websocket(port)
        self._ws = websocket.create_connection(page_ws, timeout=self.timeout_s,
                                               suppress_origin=True)
        for method in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            self.call(method)

    def _wait_for_devtools(self) -> str:
        assert self._proc is not None
        assert self._proc.stderr is not None
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line and self._proc.poll() is not None:
                break
            self._stderr.append(line)
            found = _DEVTOOLS_LINE.search(line)
            if found:
                return found.group(1)
        tail = "".join(self._stderr[-20:])
        raise RuntimeError(f"chromium did not open its DevTools port; stderr:\n{tail}")

    def _page_websocket(self, port: str) -> str:
        import urllib.request

        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                        timeout=5) as answer:
                targets = json.load(answer)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.1)
        raise RuntimeError("chromium has no page to attach to")

    def stop(self) -> None:
        """Close the connection and the browser; idempotent."""
        if self._ws is not None:
            try:
                self._ws.close()
            finally:
                self._ws = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            stop_group(self._proc.pid)
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None


    # ------------------------------------------------------------ protocol

    def _record(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.visit.console_errors.append(f"Uncaught {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in
                            params.get("args", []))
            self.visit.console_errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.visit.console_errors.append(f"log: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            self.visit.requests.append(str(params.get("request", {}).get("url")))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result, recording events that arrive meanwhile."""
        assert self._ws is not None, "not started"
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self._ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._record(message)
        raise TimeoutError(f"{method}: no answer in {self.timeout_s} s")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def open(self, url: str, *, ready_js: str = "document.readyState === 'complete'") -> PageVisit:
        """Load ``url`` and wait until ``ready_js`` is true; returns what was recorded."""
        self.visit = PageVisit()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({ready_js})"):
                self.evaluate("new Promise(r => setTimeout(r, 300))")  # late console errors
                return self.visit
            time.sleep(0.1)
        raise TimeoutError(f"{url}: not ready ({ready_js}) within {self.timeout_s} s")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the window), for people to look at."""
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        clip = {"x": 0, "y": 0, "width": size.get("width", self.window[0]),
                "height": min(size.get("height", self.window[1]), 16000), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip=clip)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
