"""The docs hold what the code holds: README size, links that resolve, and docs/cli.md's option tables against the
parser (every option of every command, with the parser's default)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from physopt.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 12_000
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def test_the_readme_stays_short():
    size = len((ROOT / "README.md").read_text())
    assert size <= README_LIMIT, f"README.md has {size} characters, more than {README_LIMIT}: move detail to docs/"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_files_and_headings_that_exist(path):
    broken = []
    for target in LINK.findall(re.sub(r"```.*?```", "", path.read_text(), flags=re.S)):
        if re.match(r"[a-z]+:", target):
            continue                                    # http(s), mailto: not checked here
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def documented_options(command: str) -> dict[str, str]:
    """option -> default cell, from the table under '## physopt COMMAND' in docs/cli.md."""
    text = (ROOT / "docs" / "cli.md").read_text()
    section = re.search(rf"^## physopt {re.escape(command)}\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert section, f"docs/cli.md has no section '## physopt {command}'"
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*([^|]*?)\s*\|", section.group(1), flags=re.M)
    return {option: default for option, default in rows}


def shown_default(action: argparse.Action) -> str:
    empty = action.default is None or action.default is False or action.default == [] or \
        action.default == argparse.SUPPRESS
    if empty or isinstance(action, argparse._StoreTrueAction):
        return "-"
    value = ",".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
    return f"`{value}`"


@pytest.mark.parametrize("command", sorted(commands()))
def test_cli_md_lists_every_option_with_the_parsers_default(command):
    documented = documented_options(command)
    problems = []
    for action in commands()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = max(action.option_strings, key=len) if action.option_strings else action.metavar or action.dest.upper()
        if name not in documented:
            problems.append(f"{name} is not in the table")
        elif documented[name] != shown_default(action):
            problems.append(f"{name}: the table says {documented[name]}, the parser's default is "
                            f"{shown_default(action)}")
    assert not problems, f"docs/cli.md, physopt {command}: " + "; ".join(problems)
