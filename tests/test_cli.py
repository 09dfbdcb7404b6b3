"""Exit codes as the README says, no tracebacks for user errors, and what users of such tools expect:
--version without importing the commands, completion, a man page, config show, help with examples
(installer audit I6, I7, I13, I14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli, write_config

BASE = {
    "platform": {"base_url": "https://mygym.open-api.perfectgym.com", "api_key": "sk_live_do_not_print_me"},
    "scale": {"driver": "tanita", "port": "/dev/ttyUSB0"},
}


@pytest.mark.parametrize(
    "args",
    [
        ("bogus",),
        ("validate", "--bogus"),
        ("queue",),
        ("decode",),
        ("queue", "purge"),
        ("queue", "show", "abc"),
        ("scan", "--cards", "--source", "bogus"),
        ("completion", "fish"),
        (),
    ],
)
def test_usage_errors_exit_64(args: tuple[str, ...]) -> None:
    r = run_cli(*args)
    assert r.returncode == 64, r.stderr
    assert b"Traceback" not in r.stderr


def test_version_is_fast_and_imports_no_command() -> None:
    code = (
        "import sys; from bridge.cli import main; rc = main(['--version']);"
        "print(sorted(m for m in sys.modules if m.startswith('bridge.commands.') or m == 'httpx'))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, check=True)
    out = r.stdout.decode().splitlines()
    assert out == ["scale-bridge 0.1.0", "[]"]
    assert run_cli("-V").stdout.decode().strip() == "scale-bridge 0.1.0"


def test_a_directory_where_a_file_is_expected_is_one_line_and_66(tmp_path: Path) -> None:
    r = run_cli("decode", "--driver", "tanita", str(tmp_path))
    assert r.returncode == 66, r.stderr
    assert r.stderr.decode().count("\n") == 1 and b"Traceback" not in r.stderr
    assert str(tmp_path).encode() in r.stderr


def test_every_command_has_help_with_an_example() -> None:
    from bridge.cli import build_parser, command_names

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("run", "validate", "queue", "check", "config", "completion", "man"):
        assert name in command_names()
        assert "examples:" in (sub.choices[name].epilog or ""), name
    check_help = run_cli("check", "--help").stdout.decode()
    assert "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN" in check_help
    queue_list_help = run_cli("queue", "list", "--help").stdout.decode()
    for option in ("--state", "--limit", "--json"):
        line = next(x for x in queue_list_help.splitlines() if x.strip().startswith(option))
        assert len(line.split()) > 1 or option == "--json", line


def test_bash_completion_is_valid_bash_and_completes_commands_actions_and_choices() -> None:
    script = run_cli("completion", "bash").stdout.decode()
    probe = script + (
        'COMP_WORDS=(scale-bridge queue ""); COMP_CWORD=2; _scale_bridge; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(scale-bridge queue list --state d); COMP_CWORD=4; _scale_bridge; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(scale-bridge va); COMP_CWORD=1; _scale_bridge; echo "${COMPREPLY[*]}"\n'
    )
    r = subprocess.run(["bash", "-c", probe], capture_output=True, check=True)
    lines = r.stdout.decode().splitlines()
    assert {"list", "show", "assign", "export"} <= set(lines[0].split())
    assert lines[1].split() == ["delivered", "dead"]
    assert lines[2] == "validate"
    assert run_cli("completion", "zsh").stdout.decode().startswith("autoload -U +X bashcompinit")


def test_man_page_names_every_command_and_exit_code() -> None:
    r = run_cli("man", env={"SOURCE_DATE_EPOCH": "1764547200"})
    page = r.stdout.decode()
    assert r.returncode == 0 and page.startswith('.TH SCALE\\-BRIDGE 1 "2025-12-01"')
    from bridge.cli import command_names

    for name in command_names():
        assert f".SS scale\\-bridge {name}" in page
    for code in ("64", "66", "75", "78"):
        assert f"\\fB{code}\\fR" in page
    rendered = subprocess.run(["man", "-l", "-"], input=r.stdout, capture_output=True, check=False,
                              env={**os.environ, "MANWIDTH": "100"})
    if rendered.returncode == 0:  # man-db present
        assert b"queue" in rendered.stdout


def test_config_show_fills_defaults_and_redacts_the_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", BASE)
    r = run_cli("config", "show", "-c", str(cfg))
    text = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert "sk_live_do_not_print_me" not in text + r.stderr.decode()
    assert 'api_key = "(redacted)"' in text and "window_s = 60.0" in text and "[metrics]" in text
    doc = json.loads(run_cli("config", "show", "--json", "-c", str(cfg)).stdout)
    assert doc["pairing"]["window_s"] == 60.0 and doc["platform"]["api_key"] == "(redacted)"
    import tomllib

    body = text.split("\n", 2)[2]
    reparsed = tomllib.loads(body)
    assert reparsed["queue"] == doc["queue"]
