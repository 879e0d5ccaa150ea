"""Your own Locust users for examples/own-function (docs/own-functions.md).

Plain Locust, nothing of connstorm's imported: connstorm loads its plugin
beside this file (collectors, the Connections tab, the live chart, failures
named by kind, thresholds, the report).

    connstorm run examples/own-function/scenario.toml \
        --locustfile examples/own-function/locustfile.py
"""

from __future__ import annotations

import random

from locust import FastHttpUser, between, task


class Reader(FastHttpUser):
    """Browses items, now and then checks the service's health."""

    wait_time = between(0.02, 0.1)

    @task(9)
    def item(self) -> None:
        self.client.get(f"/items/{random.randint(1, 1000)}", name="/items/{id}")

    @task(1)
    def health(self) -> None:
        self.client.get("/health")
