"""``ConnstormShape``: the one shape class every connstorm locustfile exposes.

Locust runs the first shape class it finds in the locustfiles it loads. Each
of connstorm's locustfiles imports this class (a class imported into a
locustfile counts as defined there), and with a locustfile of one's own it
comes after the user's file, so a shape the user defines wins.
"""

from __future__ import annotations

import time

from locust import LoadTestShape

from connstorm.loadtests.locust_plugin.shapes import ShapeParams, target


class ConnstormShape(LoadTestShape):
    """The shape Locust runs: whichever ``--shape`` names, re-read at every tick.

    ``use_common_options`` keeps ``-u``, ``-r``, ``-t`` (and the start form's
    fields) as the shape's target users, spawn rate and duration.
    """

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        """Locust calls this about once a second."""
        options = self.runner.environment.parsed_options if self.runner is not None else None
        elapsed_s = time.perf_counter() - self.start_time  # get_run_time() is untyped
        return target(ShapeParams.from_options(options), elapsed_s)
