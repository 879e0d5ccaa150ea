"""What connstorm's own Locust users share: think times, and failures marked with their kind.

:class:`ConnstormUser` is abstract (Locust never runs it): the workload's
shopper (``locustfile.py``) and the users generated from a scenario's routes
(``routes_locustfile.py``) derive from it, so both pause alike and describe a
failed request alike (``HTTP 500 [too_many_connections] ...``, see
:mod:`connstorm.failures`).
"""

from __future__ import annotations

import random
from typing import Any

from locust import FastHttpUser

from connstorm.failures import ERROR_KIND_HEADER, describe_failure


def check_response(response: Any, expected: tuple[int, ...] | None = None) -> Any:
    """Mark a ``catch_response`` response failed unless its status is expected; its JSON or None.

    ``expected`` None accepts any status below 400 (a route of one's own may
    answer 201, 204 or a redirect).
    """
    status = response.status_code
    ok = (status in expected) if expected is not None else (status and 0 < status < 400)
    if ok:
        response.success()
        try:
            return response.json()
        except Exception:  # a success whose body is not JSON is still a success
            return None
    if status == 0 or status is None:
        response.failure(f"connection error: {response.error}")
    else:
        response.failure(describe_failure(status, response.text,
                                          response.headers.get(ERROR_KIND_HEADER)))
    return None


class ConnstormUser(FastHttpUser):
    """Base of connstorm's users: a pause between ``--think-time-min-ms`` and ``-max-ms``."""

    abstract = True

    def wait_time(self) -> float:
        """A pause between ``--think-time-min-ms`` and ``--think-time-max-ms``."""
        opts = self.environment.parsed_options
        low = float(getattr(opts, "think_time_min_ms", 0.0) or 0.0)
        high = float(getattr(opts, "think_time_max_ms", 50.0) or 0.0)
        return random.uniform(low, max(low, high)) / 1000.0
