"""One headless Chromium for every report test of the session (starting one is slow)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reports.chromium import Chromium


@pytest.fixture(scope="session")
def browser() -> Iterator[Chromium]:
    """A started Chromium; each test's ``open()`` starts a fresh record of the visit."""
    with Chromium() as chromium:
        yield chromium
