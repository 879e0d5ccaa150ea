"""The "live AWS" page's commands deploy what the template accepts and name what it declares.

The page (docs/live-aws.md) was the README's "On AWS" section before the README
became a front door; the checks are the same.
"""

from __future__ import annotations

import re
import shlex

from connstorm.packaging import RDS_CA_BUNDLE_URL, default_out
from connstorm.stack_outputs import ALL_OUTPUTS, REQUIRED_OUTPUTS
from tests.deploy.cfn import ROOT, Resolved, load


def section() -> str:
    return (ROOT / "docs" / "live-aws.md").read_text(encoding="utf-8")


def commands() -> list[list[str]]:
    """The shell commands of the section's sh block, continuation lines joined."""
    block = re.search(r"```sh\n(.*?)```", section(), re.S)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_every_deploy_uses_the_template_and_parameters_it_accepts() -> None:
    deploys = [c for c in commands() if c[:2] == ["sam", "deploy"]]
    modes = set()
    for argv in deploys:
        assert argv[argv.index("--template-file") + 1] == "deploy/template.yaml"
        assert argv[argv.index("--capabilities") + 1] == "CAPABILITY_IAM"
        overrides = argv[argv.index("--parameter-overrides") + 1:]
        values = dict(o.split("=", 1) for o in overrides)
        # Resolved refuses unknown names and values outside AllowedValues
        assert Resolved(load(), values).failed_rules() == [], values
        modes.add(values["ConnectMode"])
    # the fix (through the proxy) and the failure (straight to the instance)
    assert modes == {"proxy", "direct"}


def test_package_seed_live_and_delete_commands_match_the_template() -> None:
    cmds = commands()
    # default output = the template's CodeUri, with the certificates verify-full needs
    (package,) = [c for c in cmds if c[:2] == ["connstorm", "package"]]
    assert "--out" not in package
    bundles = [package[i + 1] for i, arg in enumerate(package) if arg == "--rds-ca-bundle"]
    # curl -fsSo FILE URL: each bundle the package step names is downloaded first
    downloads = {c[-2]: c[-1] for c in cmds if c[:2] == ["curl", "-fsSo"]}
    assert set(bundles) == set(downloads)
    assert RDS_CA_BUNDLE_URL in downloads.values()
    assert RDS_CA_BUNDLE_URL in section()
    assert default_out("x86_64").as_posix() == "dist/handlers-x86_64.zip"
    (seed,) = [c for c in cmds if c[:3] == ["sam", "remote", "invoke"]]
    assert seed[3] in load()["Resources"]
    stacks = {c[c.index("--stack-name") + 1] for c in cmds if "--stack-name" in c}
    assert stacks == {"connstorm-live"}
    live = [c for c in cmds if c[:2] == ["connstorm", "live"]]
    assert live
    assert all(c[2:6] == ["--stack-name", "connstorm-live", "--region", "us-east-1"]
               for c in live)
    assert any(c[:2] == ["sam", "delete"] for c in cmds)


def test_outputs_and_parameters_named_in_the_section_exist() -> None:
    text = section()
    for key in ALL_OUTPUTS:
        assert f"`{key}`" in text, key
    template = load()
    for name in re.findall(r"^\| `(\w+)`", text, re.M):
        assert name in template["Parameters"], name
    for names in re.findall(r"^\| `(\w+)` / `(\w+)`", text, re.M):
        assert set(names) <= set(template["Parameters"]), names
    assert set(REQUIRED_OUTPUTS) <= set(template["Outputs"])


def test_cost_warning_is_dated_and_names_what_bills_by_the_hour() -> None:
    text = section()
    assert re.search(r"approximate, written \d{4}-\d{2}-\d{2}", text)
    for item in ("RDS instance", "RDS Proxy", "per vCPU-hour", "minimum 2 vCPUs",
                 "NAT gateway", "per AZ-hour", "Delete the stack"):
        assert item in text, item
