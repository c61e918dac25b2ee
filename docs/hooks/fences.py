"""MkDocs hook: the lab guide's fences carry instructions for its test, and the site shows them as titles.

`docs/lab-guide.md` is run by `tests/test_lab_guide.py`, which reads what follows a fence's language
(`sh server`, `output fixed=0,200`, `output ctrl-c`: see `tests/guide.py`). Python-Markdown takes only a
language there, so `output fixed=0,200` would not open a code block at all and the page would show the
fence as text. Before a page is rendered, this hook keeps the language, drops what only the test reads,
and says in a title what a trainee does with the block.
"""

import re

FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<lang>[\w-]+)(?:[ \t]+(?P<rest>[^\n`]*))?$", re.MULTILINE)

TITLES = {
    ("sh", "server"): "a terminal of its own: the server keeps running",
    ("sh", "install"): "once, to set up",
    ("output", "ctrl-c"): "press Ctrl-C in the server's terminal: it prints",
}


def plain(fence: re.Match[str]) -> str:
    """One opening fence as Python-Markdown reads it: a language, and a title where the reader needs one."""
    lang, rest = fence["lang"], (fence["rest"] or "").strip()
    if lang != "output" and not rest:
        return fence[0]
    title = TITLES.get((lang, rest))
    shown = "text" if lang == "output" else lang
    return f'{fence["fence"]}{shown} title="{title}"' if title else f"{fence['fence']}{shown}"


def on_page_markdown(markdown: str, **_: object) -> str:
    return FENCE.sub(plain, markdown)
