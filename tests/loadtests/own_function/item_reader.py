"""A locustfile of a user's own against the built-in workload: item reads only.

Plain Locust: no connstorm import, no failure marking of its own.
"""

from __future__ import annotations

import random

from locust import FastHttpUser, constant, task


class ItemReader(FastHttpUser):
    """Reads one item after another, the workload's hot path."""

    wait_time = constant(0.005)

    @task
    def item(self) -> None:
        self.client.get(f"/items/{random.randint(1, 1000)}", name="reader: /items/{id}")
