"""The command line builds only the parser it needs, and still says everything it did."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connstorm import __version__
from connstorm.cli import main as cli


@pytest.mark.parametrize(("argv", "needed"), [
    (["--version"], ()),
    (["-v", "--version"], ()),
    (["schema"], ("schema",)),
    (["-v", "run", "--help"], ("run",)),
    (["--help"], cli.COMMANDS),
    (["-h", "schema"], cli.COMMANDS),
    (["nosuch"], cli.COMMANDS),
    ([], cli.COMMANDS),
])
def test_main_parser_holds_only_the_command_asked_for(argv: list[str],
                                                      needed: tuple[str, ...]) -> None:
    assert cli.commands_needed(argv) == needed


def test_main_version_imports_no_command() -> None:
    # a fresh interpreter, as users run it: nothing imported by other tests
    code = ("import sys\nfrom connstorm.cli.main import main\ntry:\n    main(['--version'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('connstorm.cli.commands.')"
            " or m in ('pydantic', 'connstorm.scenario')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout == f"connstorm {__version__}\n[]\n"


def test_main_unknown_command_still_lists_every_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["nosuch"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nosuch'" in err
    assert all(f"'{name}'" in err for name in cli.COMMANDS)


def test_main_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)
