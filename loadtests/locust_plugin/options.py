"""connstorm's own Locust command-line options, each with an environment-variable default.

They are added through ``init_command_line_parser`` (not an argument group, whose
options would not reach the web UI's start form). Options a user may want to
change between swarms carry ``include_in_web_ui=True``; paths and the sampling
interval stay off the form since they only matter when the process starts.
"""

from __future__ import annotations

import os
from typing import Any

from connstorm.loadtests.locust_plugin.shapes import SHAPES
from connstorm.run_folder import SAMPLES_FILE, STACK_FILE

ENV_STACK = "CONNSTORM_STACK"
ENV_OUT = "CONNSTORM_OUT"
ENV_SAMPLE_INTERVAL = "CONNSTORM_SAMPLE_INTERVAL_S"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def add_arguments(parser: Any) -> None:
    """Register the options on Locust's parser (``init_command_line_parser``)."""
    # What the stack runs, shown in the start form. The functions' database path
    # and pattern are fixed when the stack starts (they are the functions'
    # environment), so each offers the one value it has; change them with
    # `connstorm ui SCENARIO --set functions.NAME.database=pgbouncer`.
    for option, env, help_text in (
            ("--db-path", "CONNSTORM_DB_PATH", "how the functions reach PostgreSQL"),
            ("--pattern", "CONNSTORM_PATTERN", "the handlers' connection pattern"),
            ("--pool-mode", "CONNSTORM_POOL_MODE", "PgBouncer's pool mode")):
        value = _env(env, "as deployed")
        parser.add_argument(option, choices=[value], default=value, include_in_web_ui=True,
                            help=f"{help_text} (set when the stack starts: {value})")
    parser.add_argument("--shape", choices=SHAPES, default=_env("CONNSTORM_SHAPE", "constant"),
                        include_in_web_ui=True,
                        help="load shape: constant, ramp, steps, spike or soak "
                             "(targets -u users at -r per second for -t)")
    parser.add_argument("--step-users", type=int,
                        default=int(_env("CONNSTORM_STEP_USERS", "10")), include_in_web_ui=True,
                        help="users added per step of the 'steps' shape")
    parser.add_argument("--step-duration-s", type=float,
                        default=float(_env("CONNSTORM_STEP_DURATION_S", "5")),
                        include_in_web_ui=True, help="seconds per step of the 'steps' shape")
    parser.add_argument("--think-time-min-ms", type=float,
                        default=float(_env("CONNSTORM_THINK_TIME_MIN_MS", "0")),
                        include_in_web_ui=True, help="shortest pause between a user's requests")
    parser.add_argument("--think-time-max-ms", type=float,
                        default=float(_env("CONNSTORM_THINK_TIME_MAX_MS", "50")),
                        include_in_web_ui=True, help="longest pause between a user's requests")
    parser.add_argument("--products", type=int, default=int(_env("CONNSTORM_PRODUCTS", "1000")),
                        include_in_web_ui=False,
                        help="product ids to pick from (the stack seeds this many)")
    parser.add_argument("--connstorm-stack", default=_env(ENV_STACK, ""), include_in_web_ui=False,
                        help=f"{STACK_FILE} of a local stack: its collectors' targets "
                             f"(env {ENV_STACK})")
    parser.add_argument("--connstorm-stack-wait-s", type=float, default=0.0,
                        include_in_web_ui=False,
                        help="wait up to this long for --connstorm-stack to appear, then take "
                             "--host from its api_url (connstorm starts Locust while the "
                             "stack starts)")
    parser.add_argument("--connstorm-out", default=_env(ENV_OUT, ""), include_in_web_ui=False,
                        help=f"run folder for {SAMPLES_FILE} (env {ENV_OUT}; default: the "
                             "folder of --connstorm-stack, else runs/<time>-locust)")
    parser.add_argument("--sample-interval-s", type=float,
                        default=float(_env(ENV_SAMPLE_INTERVAL, "1")), include_in_web_ui=False,
                        help="seconds between collector samples")
    parser.add_argument("--postgres-admin-dsn", default=_env("CONNSTORM_POSTGRES_ADMIN_DSN", ""),
                        include_in_web_ui=False, is_secret=True,
                        help=f"superuser DSN of a live PostgreSQL to sample (no {STACK_FILE})")
    parser.add_argument("--pgbouncer-admin-dsn",
                        default=_env("CONNSTORM_PGBOUNCER_ADMIN_DSN", ""),
                        include_in_web_ui=False, is_secret=True,
                        help=f"admin-console DSN of a live PgBouncer to sample (no {STACK_FILE})")
