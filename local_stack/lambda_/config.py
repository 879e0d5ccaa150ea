"""The emulator's configuration: everything the server process needs, in one file.

The toolkit builds an :class:`EmulatorConfig` from a scenario (plus the database
settings the stack generates for each function), writes it as JSON into the run
folder, and the emulator server process (``python -m connstorm.local_stack.lambda_``) reads
it back. Keeping the scenario's own dataclasses (:class:`LambdaConfig`,
:class:`FunctionConfig`, :class:`RouteConfig`) inside means the emulator and the
scenario cannot drift apart.

>>> cfg = EmulatorConfig.from_scenario(load_scenario("direct-small"), "/tmp/run", {})
>>> EmulatorConfig.from_json(cfg.to_json()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connstorm.errors import ScenarioError
from connstorm.local_stack.lambda_.task_root import builtin_task_root
from connstorm.run_folder import write_atomic
from connstorm.scenario import (
    BUILTIN_DIR,
    FunctionConfig,
    LambdaConfig,
    RouteConfig,
    Scenario,
    ScheduleConfig,
    load_scenario,  # noqa: F401  (used by the doctest)
)

#: Dummy account id used in ARNs (AWS documentation's own example account).
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class EmulatorConfig:
    """What the emulator server runs: the account, its functions and routes.

    ``functions`` carry an absolute ``code_dir`` and their full environment
    (the scenario's ``env`` merged with the stack's database settings), so the
    server needs nothing else to start them.
    """

    account: LambdaConfig = field(default_factory=LambdaConfig)
    functions: tuple[FunctionConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    #: ``[[schedules]]``: the emulator fires them (:mod:`.schedules`).
    schedules: tuple[ScheduleConfig, ...] = ()
    run_dir: str = "."
    host: str = "127.0.0.1"
    #: How long each database server the functions reach keeps a vanished environment's
    #: connection (``"host:port"`` -> seconds; ``None``: until the server closes it), as
    #: the stack computed it from the server's keepalive settings (:mod:`.vanished`).
    vanished_lingers: Mapping[str, float | None] = field(default_factory=dict)

    def function(self, name: str) -> FunctionConfig:
        """The function called ``name``; ``KeyError`` when there is none."""
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(name)

    # ------------------------------------------------------------ building

    @classmethod
    def from_scenario(
        cls,
        scenario: Scenario,
        run_dir: str | Path,
        function_env: Mapping[str, Mapping[str, str]] | None = None,
        *,
        base_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        vanished_lingers: Mapping[str, float | None] | None = None,
    ) -> EmulatorConfig:
        """Resolve a scenario's functions for the emulator.

        ``function_env`` maps a function name to the variables the stack adds
        (database host, port, user, password...); they win over the scenario's
        own ``env`` (explicit argument > file). A relative ``code_dir`` is taken
        relative to ``base_dir``, by default the scenario file's folder; functions
        using a shipped ``pattern`` and built-in scenarios resolve against the
        connstorm project root, where ``handlers/`` lives.
        """
        extra = function_env or {}
        unknown = sorted(set(extra) - {fn.name for fn in scenario.functions})
        if unknown:
            raise ScenarioError(f"{scenario.source}: environment given for unknown function(s) "
                                f"{', '.join(unknown)}")
        functions = tuple(
            _resolve_function(fn, scenario, extra.get(fn.name, {}), base_dir)
            for fn in scenario.functions
        )
        return cls(account=scenario.lambda_, functions=functions, routes=scenario.routes,
                   schedules=scenario.schedules, run_dir=str(Path(run_dir).resolve()),
                   host=host, vanished_lingers=dict(vanished_lingers or {}))

    # ------------------------------------------------------------ JSON

    def to_json(self) -> str:
        """Serialise for the server process (contains passwords: write it 0600)."""
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EmulatorConfig:
        """The inverse of :meth:`to_json`."""
        doc = json.loads(text)
        return cls(
            account=LambdaConfig(**doc["account"]),
            functions=tuple(_function_from_dict(f) for f in doc["functions"]),
            routes=tuple(RouteConfig(**r) for r in doc["routes"]),
            schedules=tuple(ScheduleConfig(**s) for s in doc.get("schedules", ())),
            run_dir=doc["run_dir"],
            host=doc["host"],
            vanished_lingers={str(k): None if v is None else float(v)
                              for k, v in doc.get("vanished_lingers", {}).items()},
        )

    @classmethod
    def read(cls, path: str | Path) -> EmulatorConfig:
        """Load a config file written with :meth:`write`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def write(self, path: str | Path) -> None:
        """Write the config, readable by the owner only (it holds DB passwords)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(p, self.to_json(), mode=0o600)


def function_arn(region: str, name: str) -> str:
    """The ARN a function is invoked as (``$LATEST``, unqualified)."""
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"


def _resolve_function(fn: FunctionConfig, scenario: Scenario, extra: Mapping[str, str],
                      base_dir: str | Path | None) -> FunctionConfig:
    code = Path(fn.code_dir)
    if not code.is_absolute():
        if fn.pattern is not None and fn.code_dir == ".":
            base = builtin_task_root()
        elif base_dir is not None:
            base = Path(base_dir)
        else:
            src = Path(scenario.source).resolve().parent
            base = builtin_task_root() if src == BUILTIN_DIR.resolve() else src
        code = base / code
    code = code.resolve()
    if not code.is_dir():
        raise ScenarioError(f"{scenario.source}: [[functions]] {fn.name}: code_dir: "
                            f"{code} is not a folder")
    env = {**fn.env, **{str(k): str(v) for k, v in extra.items()}}
    return dataclasses.replace(fn, code_dir=str(code), env=env)


def _function_from_dict(doc: dict[str, Any]) -> FunctionConfig:
    doc = dict(doc)
    doc["preload"] = tuple(doc.get("preload", ()))
    return FunctionConfig(**doc)
