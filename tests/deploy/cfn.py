"""Reading ``deploy/template.yaml`` as CloudFormation sees it, for the deploy tests.

:func:`load` parses the YAML with the short-form tags (``!Ref``, ``!If``,
``!GetAtt a.b``, ...) turned into their long forms (``{"Ref": ...}``,
``{"Fn::If": [...]}``), as CloudFormation and cfn-lint do. :class:`Resolved`
then evaluates the template's ``Conditions`` and ``Rules`` for one set of
parameter values and picks the ``Fn::If`` branches, so a test can ask "with
ConnectMode=direct, which security-group rules exist and what does DB_HOST
name?" without AWS. It knows the few intrinsic functions conditions and rules
use (``Equals``, ``Not``, ``And``, ``Or``, ``Condition``, ``Ref`` of a
parameter) and fails loudly on anything else.

:func:`tool` finds ``cfn-lint`` and ``sam`` in ``.venv-tools/``, the second
virtual environment ``scripts/bootstrap.sh --with-test-tools`` creates so that
aws-sam-cli's pinned dependencies cannot clash with the project's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
TOOLS_BIN = Path(os.environ.get("CONNSTORM_TOOLS_VENV", ROOT / ".venv-tools")) / "bin"
NO_VALUE = {"Ref": "AWS::NoValue"}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags."""


def _short_form(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_form)


@cache
def _load_text(text: str) -> dict[str, Any]:
    doc = yaml.load(text, Loader=_CfnLoader)
    assert isinstance(doc, dict)
    return doc


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a dict of long-form intrinsic functions (a fresh copy each call)."""
    import copy

    return copy.deepcopy(_load_text(path.read_text(encoding="utf-8")))


@dataclass
class Resolved:
    """The template under one set of parameter values: conditions, rules, resources."""

    template: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = self.template["Parameters"]
        unknown = set(self.overrides) - set(params)
        assert not unknown, f"no such parameters: {unknown}"
        self.values = {name: str(p.get("Default")) for name, p in params.items()}
        self.values.update(self.overrides)
        for name, value in self.values.items():
            allowed = params[name].get("AllowedValues")
            assert allowed is None or value in [str(a) for a in allowed], (name, value)
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        """The value of the named condition."""
        if name not in self._conditions:
            self._conditions[name] = self.truth(self.template["Conditions"][name])
        return self._conditions[name]

    def truth(self, expr: Any) -> bool:
        """Evaluate a condition expression (also a rule's condition or assertion)."""
        assert isinstance(expr, dict), expr
        assert len(expr) == 1, expr
        ((fn, arg),) = expr.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            left, right = (self.scalar(a) for a in arg)
            return left == right
        if fn == "Fn::Not":
            return not self.truth(arg[0])
        if fn == "Fn::And":
            return all(self.truth(a) for a in arg)
        if fn == "Fn::Or":
            return any(self.truth(a) for a in arg)
        raise AssertionError(f"condition function not understood: {fn}")

    def scalar(self, expr: Any) -> str:
        """A literal, or a ``Ref`` to a parameter, as text."""
        if isinstance(expr, dict) and set(expr) == {"Ref"}:
            return self.values[expr["Ref"]]
        assert isinstance(expr, str | int | float), expr
        return str(expr)

    def failed_rules(self) -> list[str]:
        """Names of the ``Rules`` whose assertions fail (CloudFormation refuses those)."""
        failed = []
        for name, rule in self.template.get("Rules", {}).items():
            applies = "RuleCondition" not in rule or self.truth(rule["RuleCondition"])
            if applies and not all(self.truth(a["Assert"]) for a in rule["Assertions"]):
                failed.append(name)
        return failed

    def pick(self, value: Any) -> Any:
        """``value`` with every ``Fn::If`` resolved and ``AWS::NoValue`` removed."""
        if isinstance(value, dict):
            if set(value) == {"Fn::If"}:
                name, yes, no = value["Fn::If"]
                return self.pick(yes if self.condition(name) else no)
            out = {}
            for key, item in value.items():
                picked = self.pick(item)
                if picked != NO_VALUE:
                    out[key] = picked
            return out
        if isinstance(value, list):
            return [p for p in (self.pick(v) for v in value) if p != NO_VALUE]
        return value

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources created with these values, their properties resolved."""
        out = {}
        for name, res in self.template["Resources"].items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out[name] = self.pick(res)
        return out

    def outputs(self) -> dict[str, dict[str, Any]]:
        """The outputs declared with these values."""
        return {name: self.pick(out) for name, out in self.template["Outputs"].items()
                if "Condition" not in out or self.condition(out["Condition"])}


def tool(name: str) -> Path:
    """A command of the tools venv; fails (not skips) when bootstrap did not install it."""
    path = TOOLS_BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/bootstrap.sh --with-test-tools "
                    "(it installs cfn-lint and aws-sam-cli into .venv-tools/)")
    return path


def offline_env(home: Path) -> dict[str, str]:
    """An environment in which the AWS tools can reach nothing and find no credentials.

    Every proxy variable points at a closed port on loopback and HOME is a fresh
    folder (no ``~/.aws``), so a tool that tried the network or a credential
    would fail, not quietly succeed; the region is set because sam wants one.
    """
    keep = {k: v for k, v in os.environ.items()
            if k in {"PATH", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE"}}
    closed = "http://127.0.0.1:9"
    return {**keep, "HOME": str(home), "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0",
            "AWS_CONFIG_FILE": str(home / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": closed,
            "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "http_proxy": closed,
            "https_proxy": closed, "NO_PROXY": "", "no_proxy": ""}
