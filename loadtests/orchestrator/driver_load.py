"""The short Lambda-shaped load of ``connstorm drivers``: the same requests for every cell.

Each cell (a driver configuration on a path) gets ``users`` virtual users at
once, each sending ``requests`` requests one after another with a short pause:
the burst makes Lambda start ``users`` environments, which then stay warm,
frozen between requests, and share the work, as a function under steady traffic
does. Every cell runs the same sequence of requests (seeded per user), in the
proportions connstorm's Locust users send (reads of one item, category pages,
an order and the read that follows it, health checks), so the cells compare.

Why not Locust: Locust drives one API at a time, and the matrix is dozens of
functions side by side; the requests go through the emulator's Lambda Invoke
API instead, each an API Gateway HTTP API event built by the emulator's own
builder (:func:`connstorm.local_stack.lambda_.apigw_events.http_event`). What
is measured, the real runtime in real environments talking to real servers, is
the same. The cells run concurrently: each has its own environments, its own
database and pools (:mod:`.driver_stack`), so they do not change what each
other measures, only the latencies (shared CPU), which the matrix reports as
measured on the machine it ran on.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from connstorm import error_kinds
from connstorm.local_stack.lambda_.apigw_events import HttpRequest, http_event

INVOKE_PATH = "/2015-03-31/functions/{}/invocations"
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "tools", "toys")
ACCOUNTS = 100
#: Locust's weights (loadtests/locust_plugin/locustfile.py): item, page, order, health.
WEIGHTS = (("item", 6), ("page", 3), ("order", 1), ("health", 1))


@dataclass(frozen=True)
class LoadPlan:
    """How much load each cell gets."""

    users: int = 4
    requests: int = 16
    think_ms: tuple[float, float] = (10.0, 40.0)
    products: int = 1000
    seed: int = 20


@dataclass(frozen=True)
class Call:
    """One API request: method, template, path parameters, query, body."""

    method: str
    template: str
    params: Mapping[str, str] = field(default_factory=dict)
    query: str = ""
    body: str | None = None


def user_requests(user: int, plan: LoadPlan) -> list[Call]:
    """The requests user ``user`` sends, the same in every cell (seeded)."""
    rng = random.Random(plan.seed * 1000 + user)
    kinds = [k for k, w in WEIGHTS for _ in range(w)]
    calls: list[Call] = []
    while len(calls) < plan.requests:
        kind = rng.choice(kinds)
        if kind == "item":
            item = str(rng.randint(1, plan.products))
            calls.append(Call("GET", "/items/{id}", {"id": item}))
        elif kind == "page":
            calls.append(Call("GET", "/items", query=f"limit={rng.choice((10, 20, 50))}"
                              f"&category={rng.choice(CATEGORIES)}"))
        elif kind == "order":
            lines = rng.sample(range(1, plan.products + 1), k=rng.randint(1, 3))
            body = {"account_id": rng.randint(1, ACCOUNTS),
                    "items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in lines]}
            calls.append(Call("POST", "/orders", body=json.dumps(body)))
        else:
            calls.append(Call("GET", "/health"))
    return calls


@dataclass
class CellLoad:
    """What the requests of one cell met."""

    requests: int = 0
    failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    #: kind -> {"count", "first"}: how often, and the first message seen.
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, ms: float, kind: str | None, message: str | None) -> None:
        """One answer: its latency, and its error's kind and message if it failed."""
        with self.lock:
            self.requests += 1
            self.latencies_ms.append(ms)
            if kind is None:
                return
            self.failures += 1
            entry = self.errors.setdefault(kind, {"count": 0, "first": message or kind})
            entry["count"] += 1

    def p95_ms(self) -> float | None:
        """The 95th percentile of the latencies (nearest rank), None without any."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return round(ordered[max(0, -(-95 * len(ordered) // 100) - 1)], 1)


def _path(call: Call) -> str:
    path = call.template
    for key, value in call.params.items():
        path = path.replace("{" + key + "}", value)
    return path


def _event(call: Call, path: str | None = None) -> bytes:
    request = HttpRequest(method=call.method, path=path or _path(call), query_string=call.query,
                          headers=[("Host", "drivers.local"), ("Content-Type", "application/json")],
                          body=(call.body or "").encode())
    return json.dumps(http_event(request, f"{call.method} {call.template}",
                                 call.params)).encode()


def outcome(status: int, headers: Mapping[str, str], payload: bytes
            ) -> tuple[int, str | None, str | None, Any]:
    """``(HTTP status the client sees, error kind, message, body)`` of one Invoke answer."""
    if status == 429:
        return 500, error_kinds.LAMBDA_THROTTLED, "TooManyRequestsException", None
    if status != 200:
        return 502, error_kinds.HTTP_ERROR, f"Invoke answered {status}", None
    try:
        doc = json.loads(payload or b"null")
    except ValueError:
        return 502, error_kinds.HTTP_ERROR, "the function's answer is not JSON", None
    if headers.get("x-amz-function-error"):
        detail = doc if isinstance(doc, dict) else {}
        message = f"{detail.get('errorType', 'Error')}: {detail.get('errorMessage', '')}"
        return 502, error_kinds.classify_message(message), message.strip()[:300], None
    code = int(doc.get("statusCode", 502)) if isinstance(doc, dict) else 502
    try:
        body = json.loads(doc.get("body") or "null") if isinstance(doc, dict) else None
    except ValueError:
        body = None
    if code < 500:
        return code, None, None, body
    detail = body if isinstance(body, dict) else {}
    message = str(detail.get("error", f"HTTP {code}")).removeprefix("database error: ")
    kind = str(detail.get("kind") or error_kinds.classify_message(message))
    return code, kind, message[:300], body


def _user(invoke: tuple[str, int], function: str, calls: Sequence[Call], plan: LoadPlan,
          load: CellLoad, rng: random.Random, timeout_s: float) -> None:
    conn = http.client.HTTPConnection(*invoke, timeout=timeout_s)
    url = INVOKE_PATH.format(function)
    try:
        for call in calls:
            follow: Call | None = call
            while follow is not None:
                current, follow = follow, None
                started = time.perf_counter()
                try:
                    conn.request("POST", url, body=_event(current),
                                 headers={"Content-Type": "application/json"})
                    answer = conn.getresponse()
                    payload = answer.read()
                    headers = {k.lower(): v for k, v in answer.getheaders()}
                    code, kind, message, body = outcome(answer.status, headers, payload)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    code, kind, message, body = 0, error_kinds.HTTP_ERROR, str(exc), None
                load.record((time.perf_counter() - started) * 1000, kind, message)
                order = body.get("order") if code == 201 and isinstance(body, dict) else None
                if isinstance(order, dict) and "id" in order:  # read the order back
                    follow = Call("GET", "/orders/{id}", {"id": str(order["id"])})
            time.sleep(rng.uniform(*plan.think_ms) / 1000)
    finally:
        conn.close()


def run_load(invoke_url: str, functions: Sequence[str], plan: LoadPlan, *,
             timeout_s: float = 30.0, progress: Callable[[int], None] | None = None
             ) -> dict[str, CellLoad]:
    """Send every cell's requests at once; returns what each function's requests met."""
    parts = urlsplit(invoke_url)
    invoke = (parts.hostname or "127.0.0.1", parts.port or 80)
    loads = {fn: CellLoad() for fn in functions}
    calls = [user_requests(u, plan) for u in range(plan.users)]
    threads = [threading.Thread(
        target=_user, args=(invoke, fn, calls[u], plan, loads[fn],
                            random.Random(plan.seed + u), timeout_s),
        name=f"drivers-{fn}-{u}", daemon=True)
        for fn in functions for u in range(plan.users)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s * (plan.requests * 2 + 2)
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if progress is not None:
            progress(sum(load.requests for load in loads.values()))
    return loads
