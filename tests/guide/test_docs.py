"""The documentation: README.md is the front door, docs/ a MkDocs site that builds with no broken link.

`mkdocs build --strict` fails on any warning, and mkdocs.yml's `validation` makes a warning of a link
to a missing page, an `#anchor` no heading makes, and a page left out of the nav. The README is not
part of the site, so its links are checked here against the site as built.
"""

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: The README's two commands, as CI runs the second (.ci/run) and a newcomer types both.
DEMO = "python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[load]' && .venv/bin/bankapp demo"
TESTS = "python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[test]' && .venv/bin/pytest"
#: A relative Markdown link or image: [text](target) with no scheme.
LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s]+)\)")


class Page(HTMLParser):
    """What a built page holds: the ids its anchors may name, and what it loads from elsewhere."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.fetched: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"] or "")
        loads = found.get("src") if tag in ("script", "img", "iframe") else None
        if tag == "link" and found.get("rel") != "canonical":
            loads = found.get("href")
        if loads:
            self.fetched.append(loads)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    built = subprocess.run(
        [*command, "--site-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def built_page(site: Path, source: str) -> Path:
    """Where mkdocs writes docs/<source> (directory URLs: docs/x.md becomes x/index.html)."""
    stem = source.removesuffix(".md")
    return site / "index.html" if stem == "index" else site / stem / "index.html"


def test_the_site_builds_with_every_page_in_it(site):
    pages = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    assert "lab-guide.md" in pages and "index.md" in pages
    for source in pages:
        assert built_page(site, source).is_file(), source


def test_the_site_fetches_nothing_from_elsewhere(site):
    """Offline: no web fonts, no analytics, no script or style from a CDN, on any page."""
    for html in site.rglob("*.html"):
        page = Page(html.read_text())
        remote = [url for url in page.fetched if re.match(r"(https?:)?//", url)]
        assert not remote, (html.relative_to(site), remote)
        assert "fonts.googleapis" not in html.read_text(), html


def test_the_lab_guides_test_fences_render_as_code(site):
    """`output fixed=0,200` is for tests/guide.py; Python-Markdown alone would print that fence as text."""
    source = (DOCS / "lab-guide.md").read_text()
    assert "```output fixed=" in source and "```sh server" in source
    html = built_page(site, "lab-guide.md").read_text()
    assert "```" not in html and "fixed=" not in html
    assert html.count('<div class="highlight">') >= source.count("\n```sh") + source.count("\n```output")


def test_the_readme_is_a_front_door_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    assert DEMO in text.splitlines() and TESTS in text.splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert any(line.startswith(".venv/bin/pytest") for line in ci), "CI runs the README's test command"


def test_the_readme_links_reach_files_and_headings(site):
    links = LINK.findall(README.read_text())
    assert len([link for link in links if link.startswith("docs/")]) >= 10
    for link in links:
        target, _, anchor = link.partition("#")
        assert (ROOT / target).exists(), link
        if anchor:
            assert target.startswith("docs/") and target.endswith(".md"), link
            page = Page(built_page(site, target.removeprefix("docs/")).read_text())
            assert anchor in page.ids, link


def tree_entries(page: str) -> dict[str, str]:
    """The layout page's tree: each path it names (folders end in /) and the words said of it.

    An entry is a name indented two spaces per level; its words start at one column for the whole
    tree, and a line that starts there continues the entry above.
    """
    block = re.search(r"```text\n(.*?)```", page, re.DOTALL)
    assert block, "the layout page draws its tree in a ```text block"
    lines = block[1].splitlines()
    column = min(m.start(2) for line in lines if (m := re.match(r"(\S+ +)(\S)", line)))
    entries: dict[str, str] = {}
    parents: list[str] = []
    last = ""
    for line in lines:
        if line[:column].strip() == "":
            entries[last] += " " + line.strip()
            continue
        indent = len(line) - len(line.lstrip())
        name = line[:column].strip()
        assert indent % 2 == 0 and " " not in name, line
        parents = parents[: indent // 2]
        assert len(parents) == indent // 2, f"{line!r} is indented below no folder"
        last = "".join(parents) + name
        entries[last] = line[column:].strip()
        if name.endswith("/"):
            parents.append(name)
    return entries


def test_the_layout_page_names_every_module_and_only_modules_that_exist():
    entries = tree_entries((DOCS / "layout.md").read_text())
    missing = [path for path in entries if not (ROOT / path).exists()]
    assert not missing, f"docs/layout.md names what is not in the tree: {missing}"
    modules = [
        path.relative_to(ROOT).as_posix()
        for package in ("bankapp", "loadtests")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "__init__.py"
    ]
    unnamed = []
    for module in modules:
        folder, _, name = module.rpartition("/")
        said = entries.get(folder + "/")
        if module in entries:
            continue
        if said is None or not re.search(rf"\b{re.escape(name.removesuffix('.py'))}\b", said):
            unnamed.append(module)
    assert not unnamed, f"modules docs/layout.md does not name: {unnamed}"
    assert len(modules) > 50


def test_every_path_the_docs_name_exists():
    """A file or folder of the repository quoted in `backticks` (`bankapp/lab/guards.py`,
    `tests/test_locks.py::test_name`) is there: a move that leaves the docs behind fails here."""
    quoted = re.compile(r"`((?:bankapp|loadtests|tests|benchmarks|examples|deploy|docs|\.ci)/[^`\s<*]*)`")
    stale = [
        f"{page.relative_to(ROOT)}: {path}"
        for page in [README, *sorted(DOCS.rglob("*.md"))]
        for path in quoted.findall(page.read_text())
        if not (ROOT / path.split("::")[0]).exists()
    ]
    assert not stale, stale
