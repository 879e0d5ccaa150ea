"""What Lambda hands a runtime: its environment variables, ids and event headers.

Kept apart from the scheduler so the list of variables can be read (and
checked against the guide) in one place. ``AWS_LAMBDA_MAX_CONCURRENCY`` is
never set: it switches awslambdaric into a multi-concurrent mode real Lambda
functions do not use.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from connstorm.local_stack.aws_credentials import (
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    DUMMY_SESSION_TOKEN,
)
from connstorm.local_stack.lambda_.ids import root_trace_id, segment_id
from connstorm.scenario import FunctionConfig

_SIGNAL_NAMES = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated",
                 signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted",
                 signal.SIGINT: "interrupt", signal.SIGBUS: "bus error"}


def runtime_dir() -> str:
    """Where awslambdaric lives (``LAMBDA_RUNTIME_DIR``, ``/var/runtime`` on AWS)."""
    import awslambdaric

    return str(Path(awslambdaric.__file__).resolve().parent)


def function_environment(fn: FunctionConfig, region: str, runtime_root: str) -> dict[str, str]:
    """The variables every environment of ``fn`` gets (the per-environment ones aside:
    ``AWS_LAMBDA_RUNTIME_API`` and ``AWS_LAMBDA_LOG_STREAM_NAME``, see :func:`stream_name`).

    The function's own ``env`` comes first; Lambda's reserved names win over it.
    """
    env = dict(fn.env)
    env.update({
        "_HANDLER": fn.handler,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
        "AWS_SESSION_TOKEN": DUMMY_SESSION_TOKEN,
        "LAMBDA_TASK_ROOT": fn.code_dir,
        "LAMBDA_RUNTIME_DIR": runtime_root,
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)
    return env


def stream_name(env_id: str) -> str:
    """``AWS_LAMBDA_LOG_STREAM_NAME``: ``YYYY/MM/DD/[$LATEST]<32 hex env id>``.

    Handlers derive the environment id from it (for ``application_name``).
    """
    return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{env_id}"


def trace_id() -> str:
    """An X-Ray trace header value (``Lambda-Runtime-Trace-Id``)."""
    return f"{root_trace_id(time.time())};Parent={segment_id()};Sampled=0"


def client_context_header(raw: str | None) -> str | None:
    """The client context as one line of JSON (given decoded, or base64 of it)."""
    if not raw:
        return None
    for text in (raw, None):
        try:
            if text is None:
                text = base64.b64decode(raw, validate=True).decode()
            return json.dumps(json.loads(text), separators=(",", ":"))
        except ValueError:
            continue
    return None


def exit_reason(status: int) -> str:
    """Lambda's wording for how a runtime ended (``signal: killed``, ``exit status 1``)."""
    if status >= 0:
        return f"exit status {status}"
    sig = -status
    try:
        name = _SIGNAL_NAMES.get(signal.Signals(sig)) or (signal.strsignal(sig) or "").lower()
    except ValueError:
        name = ""
    return f"signal: {name or sig}"
