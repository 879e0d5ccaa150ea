"""A locustfile of a user's own: plain Locust, nothing of connstorm's imported.

One HttpUser (requests) and one FastHttpUser, neither marking failures itself:
Locust fails the 502 of ``/fail`` with its generic errors, which connstorm's
plugin must classify like its own users' failures.
"""

from __future__ import annotations

from locust import FastHttpUser, HttpUser, constant, task


class ShopperUser(HttpUser):
    """Mostly healthy requests, one in four to the failing route."""

    wait_time = constant(0.01)

    @task(3)
    def health(self) -> None:
        self.client.get("/health", name="own: /health")

    @task(1)
    def fail(self) -> None:
        self.client.get("/fail", name="own: /fail")


class FastShopperUser(FastHttpUser):
    """The same through Locust's FastHttpUser, whose generic failure differs."""

    wait_time = constant(0.01)

    @task
    def fail(self) -> None:
        self.client.get("/fail", name="own fast: /fail")
