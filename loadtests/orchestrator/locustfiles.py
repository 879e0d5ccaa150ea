"""What sends the load: the workload's user, users generated from the routes, or your own.

A run gives Locust one of three sets of locustfiles
(``loadtests/locust_plugin/``), all with connstorm's plugin in them:

* ``locustfile.py``, the workload's shopper, when the scenario's ``[[routes]]``
  are the workload's five (the built-in scenarios) or there are none (a
  deployed workload);
* ``routes_locustfile.py``, users generated from the routes, when they are
  anything else: the routes travel in ``CONNSTORM_ROUTES``;
* ``YOURS.py,plugin_locustfile.py`` with ``[load] locustfile`` (relative to the
  scenario file) or ``--locustfile`` (relative to the working directory): your
  users, connstorm's collectors, tab, chart, failure kinds and shape.

Your locustfile is checked before anything starts (:func:`check_own`): Locust
itself lists its User classes (``locust --list``, in a subprocess: the
orchestrator never imports Locust), so a missing file, one that fails to
import or one without a User class is one line and exit code 12.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connstorm.errors import LocustfileError
from connstorm.loadtests.locust_plugin.route_load import ENV_ROUTES, encode
from connstorm.local_stack.deathsig import preexec_death_signal
from connstorm.scenario import Scenario
from connstorm.signals import held_while_forking

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "locust_plugin"
#: The workload's user (also runs on its own: ``locust -f`` this file).
WORKLOAD_LOCUSTFILE = PLUGIN_DIR / "locustfile.py"
ROUTES_LOCUSTFILE = PLUGIN_DIR / "routes_locustfile.py"
PLUGIN_LOCUSTFILE = PLUGIN_DIR / "plugin_locustfile.py"
#: The routes the workload serves (handlers/workload): its user calls exactly these.
WORKLOAD_ROUTES = frozenset({("GET", "/health"), ("GET", "/items/{id}"), ("GET", "/items"),
                             ("POST", "/orders"), ("GET", "/orders/{id}")})
#: Seconds ``locust --list`` may take (importing Locust is slow on a busy machine).
CHECK_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoadSource:
    """The locustfiles of a run and what Locust's environment must carry for them."""

    kind: str  # "workload", "routes" or "own"
    files: tuple[Path, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    own: Path | None = None

    @property
    def locustfile_arg(self) -> str:
        """Locust's ``-f`` value (several files are comma-separated)."""
        return ",".join(str(path) for path in self.files)


def uses_workload_user(scenario: Scenario) -> bool:
    """Whether the routes are the workload's own, untouched (or there are none)."""
    routes = scenario.routes
    if not routes:
        return True
    return ({(r.method, r.path) for r in routes} == WORKLOAD_ROUTES
            and not any(r.shapes_load for r in routes))


def own_locustfile(scenario: Scenario, given: Path | None = None) -> Path | None:
    """``--locustfile`` (as given), else ``[load] locustfile`` relative to the scenario file."""
    if given is not None:
        return given.expanduser().absolute()
    name = scenario.load.locustfile
    if not name:
        return None
    path = Path(name).expanduser()
    if not path.is_absolute():
        base = Path(scenario.source).parent if scenario.source else Path.cwd()
        path = base / path
    return path.absolute()


def load_source(scenario: Scenario, given: Path | None = None) -> LoadSource:
    """The locustfiles for ``scenario`` (``given``: ``--locustfile``)."""
    own = own_locustfile(scenario, given)
    if own is not None:
        return LoadSource("own", (own, PLUGIN_LOCUSTFILE), own=own)
    if uses_workload_user(scenario):
        return LoadSource("workload", (WORKLOAD_LOCUSTFILE,))
    return LoadSource("routes", (ROUTES_LOCUSTFILE,), {ENV_ROUTES: encode(scenario.routes)})


def ready_source(scenario: Scenario, given: Path | None = None) -> LoadSource:
    """:func:`load_source`, your own locustfile checked (:func:`check_own`)."""
    source = load_source(scenario, given)
    check_own(source)
    return source


def check_own(source: LoadSource, *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> tuple[str, ...]:
    """The User classes of your locustfile; raises :class:`LocustfileError` when it cannot run.

    Does nothing (returns ``()``) unless ``source`` is your own.
    """
    path = source.own
    if path is None:
        return ()
    if not path.is_file():
        raise LocustfileError(f"{path}: no such locustfile")
    if path.suffix != ".py":
        raise LocustfileError(f"{path}: a locustfile must be a .py file")
    stat = path.stat()
    key = (source.locustfile_arg, stat.st_mtime_ns, stat.st_size)
    if key not in _CHECKED:  # a repro's variants share one file: list its users once
        _CHECKED[key] = _list_users(path, source, env, cwd)
    return _CHECKED[key]


#: Users found per (files, mtime, size) of a locustfile, in this process.
_CHECKED: dict[tuple[str, int, int], tuple[str, ...]] = {}


def _list_users(path: Path, source: LoadSource, env: Mapping[str, str] | None,
                cwd: Path | None) -> tuple[str, ...]:
    """``locust -f ... --list`` in a subprocess: the users, or a LocustfileError."""
    argv = [sys.executable, "-m", "locust", "-f", source.locustfile_arg, "--list"]
    try:
        with held_while_forking():
            result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                    timeout=CHECK_TIMEOUT_S, env=None if env is None else dict(env),
                                    cwd=cwd, stdin=subprocess.DEVNULL,
                                    preexec_fn=preexec_death_signal)
    except subprocess.TimeoutExpired:
        raise LocustfileError(f"{path}: Locust did not list its users within "
                              f"{CHECK_TIMEOUT_S:.0f} s (does importing it hang?)") from None
    lines = result.stdout.splitlines()
    if result.returncode != 0 or "Available Users:" not in lines:
        problem = _last_line(result.stderr) or _last_line(result.stdout) or (
            f"exit code {result.returncode}")
        raise LocustfileError(f"{path}: Locust cannot load it: {problem}")
    users = tuple(line.strip() for line in lines[lines.index("Available Users:") + 1:]
                  if line.startswith("    ") and line.strip())
    if not users:
        raise LocustfileError(f"{path}: no Locust User class in it (define a subclass of "
                              "HttpUser, FastHttpUser or User with @task methods)")
    return users


def _last_line(text: str) -> str:
    """The last non-empty line of a process's output, shortened: the error itself."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return " ".join(line.split())[:300]
    return ""
