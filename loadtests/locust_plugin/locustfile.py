"""connstorm's Locust users: the workload's five routes, with realistic weights and pauses.

Runs two ways:

* through connstorm (``connstorm run`` / ``connstorm ui``), which passes the
  stack file, run folder, shape and think times as options;
* on its own, against any deployment of the workload::

      locust -f loadtests/locust_plugin/locustfile.py --host https://abc.execute-api.eu-west-1.amazonaws.com

A failed request is marked with its HTTP status and the error the body carries
(``HTTP 500 [too_many_connections] connection failed: ...``), so Locust's failure
table, its CSV and connstorm's counter all classify it the same way.

connstorm loads this file when a scenario's ``[[routes]]`` are the workload's
own (the built-in scenarios); other routes get users generated from them
(``routes_locustfile.py``), and ``[load] locustfile`` brings users of your own
(``plugin_locustfile.py`` adds connstorm's plugin to them).
"""

from __future__ import annotations

import random
from typing import Any

from locust import task

from connstorm.loadtests.locust_plugin import plugin  # noqa: F401  - registers connstorm's options, collectors and UI
from connstorm.loadtests.locust_plugin.shape_class import ConnstormShape
from connstorm.loadtests.locust_plugin.users import ConnstormUser, check_response

__all__ = ["ApiUser", "ConnstormShape"]

#: The workload's product categories (handlers/workload/schema.py).
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "tools", "toys")
#: Accounts the workload seeds at least.
ACCOUNTS = 100


class ApiUser(ConnstormUser):
    """A shopper: mostly reads single items and lists, sometimes orders and reads the order."""

    def _products(self) -> int:
        return max(1, int(getattr(self.environment.parsed_options, "products", 1000) or 1000))

    def _check(self, response: Any, expected: tuple[int, ...] = (200,)) -> Any:
        """Mark the response failed unless its status is expected; return its JSON (or None)."""
        return check_response(response, expected)

    @task(6)
    def get_item(self) -> None:
        """``GET /items/{id}``: the hot path."""
        item_id = random.randint(1, self._products())
        with self.client.get(f"/items/{item_id}", name="/items/{id}",
                             catch_response=True) as response:
            self._check(response)

    @task(3)
    def list_items(self) -> None:
        """``GET /items?limit=N&category=C``: a category page."""
        params = f"limit={random.choice((10, 20, 50))}&category={random.choice(CATEGORIES)}"
        with self.client.get(f"/items?{params}", name="/items?limit&category",
                             catch_response=True) as response:
            self._check(response)

    @task(1)
    def order(self) -> None:
        """``POST /orders`` then ``GET /orders/{id}``: a write and the read that follows it."""
        products = self._products()
        lines = random.sample(range(1, products + 1), k=min(products, random.randint(1, 3)))
        body = {"account_id": random.randint(1, ACCOUNTS),
                "items": [{"product_id": p, "quantity": random.randint(1, 3)} for p in lines]}
        with self.client.post("/orders", json=body, name="/orders",
                              catch_response=True) as response:
            created = self._check(response, expected=(200, 201))
        if isinstance(created, dict) and isinstance(created.get("order"), dict):
            created = created["order"]
        order_id = created.get("id") if isinstance(created, dict) else None
        if order_id is None:
            return
        with self.client.get(f"/orders/{order_id}", name="/orders/{id}",
                             catch_response=True) as response:
            self._check(response)

    @task(1)
    def health(self) -> None:
        """``GET /health``: a SELECT 1 over the handler's connection."""
        with self.client.get("/health", name="/health", catch_response=True) as response:
            self._check(response)
