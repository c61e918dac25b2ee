"""Read `docs/lab-guide.md` as a script, and match what it prints with what it quotes.

The convention the guide follows is in `tests/guide/test_lab_guide.py`'s
docstring; this module reads it: `parse` cuts the guide into sections and
steps, `matches` compares an output with the shape the guide quotes.
`guide_run` runs the steps as a trainee would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "lab-guide.md"

#: The info strings a fenced block of the guide may have (the first words of it).
KINDS = {"sh": "command", "sh server": "server", "sh install": "install", "output": "output", "python": "text"}
FENCE = re.compile(r"^```(.*)$")
HEADING = re.compile(r"^## (?:(\d+)\. )?(.+)$")
#: A number as the guide quotes them: 7243, -98, +4,328, 1,600,000, 0.5, 83.5
NUMBER = r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?"
TOKENS = re.compile(rf"(\.\.\.|{NUMBER}|[ \t]+)")


class GuideError(AssertionError):
    """The guide does not follow its convention, or a step did not print what the guide says."""


@dataclass
class Block:
    kind: str  # command, server, install, output, text
    text: str
    line: int  # where its fence opens, 1-based
    options: dict[str, str] = field(default_factory=dict)

    @property
    def fixed(self) -> frozenset[str]:
        return frozenset(filter(None, self.options.get("fixed", "").split(",")))


@dataclass
class Step:
    """A command (or a Ctrl-C), and the output block the guide quotes for it (None: it prints nothing)."""

    action: Block
    output: Block | None = None


@dataclass
class Section:
    title: str
    number: int | None  # the lesson's number; None for "Before you start" and the like
    steps: list[Step]
    line: int


def parse_info(info: str, line: int) -> tuple[str, dict[str, str]]:
    words = info.split()
    if not words:
        raise GuideError(f"line {line}: a fenced block needs an info string ({', '.join(KINDS)})")
    options = dict(word.split("=", 1) for word in words[1:] if "=" in word)
    flags = [word for word in words[1:] if "=" not in word]
    if words[0] == "output":
        unknown = set(flags) - {"ctrl-c"} or set(options) - {"fixed"}
        if unknown:
            raise GuideError(f"line {line}: unknown option {sorted(unknown)} of an output block")
        return ("ctrl-c" if flags else "output"), options
    kind = KINDS.get(" ".join(words))
    if kind is None:
        raise GuideError(f"line {line}: unknown info string {info!r}; use one of {', '.join(KINDS)}")
    return kind, options


def blocks(markdown: str) -> list[tuple[str, int, Block | None]]:
    """(heading or '', line, block) in order: headings as ('## ...', line, None)."""
    found, lines, index = [], markdown.splitlines(), 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            found.append((line, index + 1, None))
        fence = FENCE.match(line)
        if fence:
            start = index
            kind, options = parse_info(fence.group(1), index + 1)
            index += 1
            body = []
            while index < len(lines) and lines[index] != "```":
                body.append(lines[index])
                index += 1
            if index == len(lines):
                raise GuideError(f"line {start + 1}: a fenced block that never closes")
            found.append(("", start + 1, Block(kind, "\n".join(body), start + 1, options)))
        index += 1
    return found


def parse(markdown: str) -> list[Section]:
    """The guide's sections, each with its steps; text blocks are left out."""
    sections: list[Section] = []
    current = Section("(top)", None, [], 1)
    for heading, line, block in blocks(markdown):
        if block is None:
            match = HEADING.match(heading)
            sections.append(current)
            current = Section(match.group(2), int(match.group(1)) if match.group(1) else None, [], line)
            continue
        if block.kind in {"command", "server", "install"}:
            current.steps.append(Step(block))
        elif block.kind == "ctrl-c":
            current.steps.append(Step(block, block))
        elif block.kind == "output":
            last = current.steps[-1] if current.steps else None
            if last is None or last.output is not None or last.action.kind == "install":
                raise GuideError(f"line {line}: an output block with no command block before it in its section")
            last.output = block
    sections.append(current)
    return [section for section in sections if section.steps or section.number is not None]


@cache
def guide_sections() -> list[Section]:
    return parse(GUIDE.read_text())


# matching


def line_pattern(expected: str, fixed: frozenset[str]) -> re.Pattern:
    """One expected line as a regular expression: `...` is any text, a number any number
    (unless `fixed` names it), a run of blanks any run of blanks."""
    pattern = []
    for token in TOKENS.split(expected):
        if not token:
            continue
        if token == "...":
            pattern.append(".*?")
        elif token.strip(" \t") == "":
            pattern.append(r"[ \t]+")
        elif re.fullmatch(NUMBER, token):
            pattern.append(re.escape(token) if token in fixed else NUMBER)
        else:
            pattern.append(re.escape(token))
    return re.compile("".join(pattern))


def significant(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: str, actual: str, fixed: frozenset[str] = frozenset()) -> bool:
    """Whether `actual` has the shape of `expected`; a line that is only `...` stands for any lines."""
    want, got = significant(expected), significant(actual)
    patterns = [None if line.strip() == "..." else line_pattern(line, fixed) for line in want]

    @cache
    def fits(i: int, j: int) -> bool:
        if i == len(patterns):
            return j == len(got)
        if patterns[i] is None:
            return any(fits(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and patterns[i].fullmatch(got[j]) is not None and fits(i + 1, j + 1)

    return fits(0, 0)


def setup_sections() -> list[Section]:
    """What comes before lesson 1: starting the server, `U` and `H`."""
    sections = guide_sections()
    first = next(index for index, section in enumerate(sections) if section.number is not None)
    return sections[:first]


def lesson(number: int) -> Section:
    return next(section for section in guide_sections() if section.number == number)
