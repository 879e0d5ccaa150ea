"""Regenerate the docs' screenshots from real runs: ``make docs-images``.

``docs/images/live-chart-pinning.png``: the live chart (``/connstorm/chart``) of
``connstorm ui examples/own-function/scenario.toml`` -- a function of one's own
that pins every connection it opens behind the RDS Proxy stand-in -- taken by
headless Chromium after about half a minute of load. The run, the swarm and
the browser are the ones the browser test uses (``tests/loadtests/ui_session.py``,
``tests/reports/chromium.py``), so the picture shows what the test checks.

Needs the test tools (``scripts/bootstrap.sh --with-test-tools``: Chromium,
websocket-client). Sends load only to the local stack on 127.0.0.1.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.loadtests.ui_session import UiRun  # noqa: E402  - after the repository joins the path
from tests.reports.chromium import Chromium  # noqa: E402

EXAMPLE = REPO / "examples" / "own-function" / "scenario.toml"
IMAGE = REPO / "docs" / "images" / "live-chart-pinning.png"
#: Seconds of load the picture shows.
SHOWN_S = 30.0
PROXY_DRAWN = ("document.getElementById('proxy') && document.getElementById('proxy').data "
               "&& document.getElementById('proxy').data.length > 0 "
               "&& document.querySelectorAll('#pins tbody tr').length > 0")


def _enough(doc: dict[str, Any]) -> bool:
    users = doc["series"]["users"]
    return bool(doc.get("pin_reasons")) and max(users["x"], default=0) >= SHOWN_S


def main() -> int:
    """Run, swarm, wait, screenshot; the path of the image on success."""
    with tempfile.TemporaryDirectory(prefix="connstorm-docs-") as tmp, \
            UiRun(EXAMPLE, Path(tmp) / "ui", ["-t", "300s"]) as ui:
        ui.swarm(users=40, spawn_rate=4)
        ui.wait_for(_enough, timeout_s=SHOWN_S + 180)
        with Chromium(window=(1300, 900)) as browser:
            browser.open(f"{ui.base}/connstorm/chart", ready_js=PROXY_DRAWN)
            browser.screenshot(IMAGE)
    sys.stdout.write(f"wrote {IMAGE.relative_to(REPO)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
