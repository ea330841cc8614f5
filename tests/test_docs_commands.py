"""Every ``secfoundry`` command in README.md and docs/*.md names a real command and real options.

Command blocks are fenced blocks (bash/sh/console/plain); lines are joined at trailing
backslashes, comments dropped, pipelines split, and each ``secfoundry ...`` invocation is
resolved against the typer app (click introspection, nothing is run).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from secfoundry.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}


def command_lines(text: str, groups: set[str] | None = None) -> list[str]:
    """``secfoundry ...`` invocations in the shell blocks of a Markdown text. In blocks without a
    language (often program output) a line counts only when it names a real group (``groups``)."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) not in SHELL_LANGS:
            continue
        body = re.sub(r"\\\n\s*", " ", m.group(2)).replace("$(which secfoundry)", "secfoundry")
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            for part in re.split(r"\s(?:\||&&|;)\s", line):
                part = part.strip()
                if not re.match(r"^(\S+/)?secfoundry\s", part + " "):
                    continue
                words = part.split()
                if m.group(1) == "" and groups is not None and (len(words) < 2 or words[1] not in groups):
                    continue  # e.g. "secfoundry service ready: http://..." printed by a command
                out.append(part)
    return out


def _is_group(cmd) -> bool:
    # typer ships its own copy of click: duck-type rather than isinstance(click.Group)
    return isinstance(getattr(cmd, "commands", None), dict)


def check(line: str, root) -> str | None:
    """None when ``line`` names a real command with real options, else what is wrong."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as e:
        return f"unparseable: {e}"
    tokens = [t.strip("[]") for t in tokens[1:]]
    cmd = root
    path = ["secfoundry"]
    while _is_group(cmd) and tokens and not tokens[0].startswith("-"):
        sub = cmd.commands.get(tokens[0])
        if sub is None:
            return f"{' '.join(path)} has no command {tokens[0]!r}"
        path.append(tokens.pop(0))
        cmd = sub
    if "--help" in tokens:
        return None
    if _is_group(cmd) and not getattr(cmd, "invoke_without_command", False):
        return f"{' '.join(path)} is a group: name one of its commands"
    known = {"--help"}
    for p in cmd.params:
        known.update(p.opts)
        known.update(getattr(p, "secondary_opts", []))
    for t in tokens:
        if not t.startswith("-") or t == "-" or re.match(r"^-\d", t):
            continue
        name = t.split("=", 1)[0]
        if name not in known:
            return f"{' '.join(path)} has no option {name!r} (known: {sorted(known)})"
    return None


def _cases():
    groups = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for doc in DOCS:
        for line in command_lines(doc.read_text(encoding="utf-8"), groups):
            yield pytest.param(line, id=f"{doc.relative_to(ROOT)}: {line[:60]}")


@pytest.fixture(scope="module")
def root():
    return typer.main.get_command(app)


def test_docs_have_commands():
    assert sum(1 for _ in _cases()) >= 20


@pytest.mark.parametrize("line", list(_cases()))
def test_command_is_real(line: str, root):
    assert check(line, root) is None, check(line, root)


def test_checker_catches_wrong_commands(root):
    assert check("secfoundry eval run --model m --benchmark b --out o --no-such-flag", root)
    assert check("secfoundry eval nope", root)
    assert check("secfoundry eval", root)
    assert check("secfoundry kb search 'x' --k 5", root) is None
    assert command_lines("```bash\nprintf 'a' | secfoundry kb search - --k 5  # c\n```\n") == [
        "secfoundry kb search - --k 5  # c"]
    assert command_lines("```\nsecfoundry service ready: http://x\nsecfoundry kb status\n```\n", {"kb"}) == [
        "secfoundry kb status"]
