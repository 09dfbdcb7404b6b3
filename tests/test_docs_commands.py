"""Every ``scale-bridge`` command line in docs/serial.md's shell examples is one the parser accepts
(its options and arguments exist), so the support pages do not drift from the CLI."""

from __future__ import annotations

import re
import shlex

import pytest

from bridge.cli import build_parser
from tests.helpers import REPO

DOCS = ("serial.md",)


def _is_program(position: int, word: str) -> bool:
    return word.endswith("/bin/scale-bridge") or (position == 0 and word == "scale-bridge")


def _commands(name: str) -> list[list[str]]:
    text = (REPO / "docs" / name).read_text()
    out: list[list[str]] = []
    for block in re.findall(r"^ *```(?:sh|console)\n(.*?)^ *```", text, re.M | re.S):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.strip().removeprefix("$ ")
            words = shlex.split(re.split(r"\s[|>]\s?", line, maxsplit=1)[0], comments=True)
            if words[:1] == ["sudo"]:
                words = words[1:]
            # the program, not the unit: "scale-bridge ..." first, or its path (after systemd-run's options)
            starts = [i for i, w in enumerate(words) if _is_program(i, w)]
            if starts:
                out.append(words[starts[0] + 1:])
    return out


@pytest.mark.parametrize("name", DOCS)
def test_documented_commands_parse(name: str) -> None:
    commands = _commands(name)
    assert len(commands) >= 9  # the extraction found the examples
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"docs/{name}: scale-bridge {shlex.join(argv)}: rejected by the parser (exit {exc.code})")
