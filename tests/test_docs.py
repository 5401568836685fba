"""The documentation: the site builds strictly, the README fits on two screens, and every command
that the README or the docs show exists with the options they give it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cli.reference import commands, option_names

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "scripts" / "README.md"]
GROUPS = ("review", "stack")
GLOBAL_OPTIONS = {"--debug", "--help"}
_CALL = re.compile(r"(?:^|[\s\"'(/`])colorize\s+((?:--debug\s+)?[a-z][a-z-]*(?:\s+[a-z][a-z-]*)?)([^#|;&`]*)")


def code_of(text: str) -> list[str]:
    """The lines of the page's code: indented and fenced blocks, and inline code spans."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            lines.append(line)
        else:
            lines += re.findall(r"`([^`]+)`", line)
    return lines


def calls(line: str) -> list[tuple[str, set[str]]]:
    """(verb, options) of each `colorize` call on the line."""
    out = []
    for words, rest in _CALL.findall(line):
        words = words.replace("--debug", "").split()
        verb = " ".join(words[:2]) if words[0] in GROUPS else words[0]
        tail = " ".join(words[2:] if words[0] in GROUPS else words[1:]) + " " + rest
        out.append((verb, set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", tail))))
    return out


def problems(pages) -> list[str]:
    known = commands()
    found = []
    for page in pages:
        for line in code_of(page.read_text()):
            for verb, options in calls(line):
                if verb in GROUPS and not options:  # the group itself: `colorize stack`
                    continue
                if verb not in known:
                    found.append(f"{page.name}: `colorize {verb}`: no such command")
                elif unknown := options - option_names(known[verb]) - GLOBAL_OPTIONS:
                    found.append(f"{page.name}: `colorize {verb}` has no {', '.join(sorted(unknown))}")
    return found


def test_every_command_the_docs_show_exists_with_its_options(tmp_path):
    assert calls("    colorize restore SRC DEST --hints imported  # --not-this") == [("restore", {"--hints"})]
    assert calls('eval "$(colorize stack up --production)"') == [("stack up", {"--production"})]
    wrong = tmp_path / "wrong.md"
    wrong.write_text("    colorize promote --model colorizer --candidate 3\n\nthen `colorize polish DEST`\n")
    assert problems([wrong]) == ["wrong.md: `colorize promote` has no --candidate, --model", "wrong.md: `colorize polish`: no such command"]
    assert problems(PAGES) == []


def test_the_readme_fits_on_two_screens():
    assert len((REPO / "README.md").read_text().splitlines()) < 150


def test_the_documentation_site_builds_strictly(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    site = tmp_path / "site"
    cli_page = (site / "cli" / "index.html").read_text()
    assert all(f"colorize {verb}" in cli_page for verb in commands()), "the CLI reference lists every verb"
    assert (site / "validation_sheet.jpg").exists() and (site / "model-card" / "index.html").exists()
