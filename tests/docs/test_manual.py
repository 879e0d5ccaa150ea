"""The README is a front door and docs/ the manual: short, linked, and never pointing away.

A newcomer reads the README's two commands, then follows one link to the page
that explains what they saw; everything else is one page per command or part of
the system under docs/. Links stay inside the repository, except to public
documentation (the pages facts are cited from), and every one of them resolves.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted([README, *DOCS.rglob("*.md"), ROOT / "BENCHMARKS.md"])

#: Where a link may leave the repository: public documentation and the files it names.
PUBLIC_HOSTS = {
    "docs.aws.amazon.com", "aws.amazon.com", "truststore.pki.rds.amazonaws.com",
    "www.amazontrust.com", "www.postgresql.org", "www.pgbouncer.org", "docs.locust.io",
    "www.psycopg.org", "json-schema.org", "prometheus.io",
}
#: AWS's own sample repositories, which AWS's pages link to as documentation.
PUBLIC_PREFIXES = ("https://github.com/aws-samples/",)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|<(https?://[^>\s]+)>|!\[[^\]]*\]\(([^)\s]+)\)")


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [next(g for g in m.groups() if g) for m in _LINK.finditer(text)]


def test_the_readme_is_a_front_door_under_250_lines() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 250
    assert "make demo" in text
    assert "make test" in text
    # The newcomer path: the two commands, then the page that explains what they saw.
    commands = text.index("## The two commands")
    saw = text.index("## What you just saw")
    assert commands < saw
    assert "(docs/reports.md)" in text[saw:text.index("\n## ", saw + 1)]
    assert "](docs/report.png)" in text
    assert (ROOT / "docs" / "report.png").is_file()
    assert text.count("<!-- drivers-table:start -->") == 1
    assert text.count("<!-- drivers-table:end -->") == 1


def test_the_readme_names_the_six_variants_connstorm_repro_runs() -> None:
    from connstorm.loadtests.orchestrator.repro import variants_for

    text = README.read_text(encoding="utf-8")
    names = [v.name for v in variants_for(quick=False)]
    assert len(names) == 6
    for name in names:
        assert f"| `{name}` |" in text, name


def test_there_is_a_page_for_every_command() -> None:
    from connstorm.cli.main import COMMANDS

    for command in COMMANDS:
        assert (DOCS / "commands" / f"{command}.md").is_file(), command
        assert f"(docs/commands/{command}.md)" in README.read_text(encoding="utf-8"), command


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_stays_in_the_repository_or_goes_to_public_documentation(page: Path) -> None:
    bad = []
    for link in _links(page):
        parts = urlsplit(link)
        if parts.scheme in ("http", "https"):
            if parts.hostname in ("127.0.0.1", "localhost"):
                continue
            if parts.hostname not in PUBLIC_HOSTS and not link.startswith(PUBLIC_PREFIXES):
                bad.append(link)
        elif parts.scheme:
            bad.append(link)
        elif parts.path:
            target = (page.parent / parts.path).resolve()
            if not target.exists() or ROOT not in target.parents:
                bad.append(link)
    assert not bad, f"{page.relative_to(ROOT)}: links that do not resolve or leave: {bad}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_page_points_at_files_users_do_not_have(page: Path) -> None:
    # Facts cite their public source (an AWS or PostgreSQL page and section), never
    # the development machines' shared folder.
    assert "shared/" not in page.read_text(encoding="utf-8")


def test_the_readme_says_where_make_demo_put_the_connstorm_command() -> None:
    # make demo installs connstorm into .venv/, not onto PATH: a newcomer who types
    # the next section's `connstorm up` as printed gets "command not found".
    text = README.read_text(encoding="utf-8")
    start = text.index("## Beyond the demo")
    beyond = text[start:text.index("\n## ", start + 1)]
    assert ". .venv/bin/activate" in beyond[:beyond.index("```")]


def test_own_functions_states_the_pool_its_example_gets() -> None:
    # The page's picture and text describe examples/own-function: its proxy pool is
    # max_connections_percent of max_connections (as RDS computes it), all of it pinned.
    from connstorm.capacity import proxy_pool_size
    from connstorm.scenario import load_scenario

    scenario = load_scenario(ROOT / "examples" / "own-function" / "scenario.toml")
    pool = proxy_pool_size(scenario.postgres.max_connections,
                           scenario.rds_proxy.max_connections_percent)
    text = (DOCS / "own-functions.md").read_text(encoding="utf-8")
    assert re.findall(r"pool of (\d+)", text) == [str(pool)]
    assert re.findall(r"the proxy's (\d+) database connections", text) == [str(pool)]
    assert re.findall(r"all (\d+) database connections pinned", text) == [str(pool)]
    assert f"{scenario.load.users} users on `examples/own-function`" in text
