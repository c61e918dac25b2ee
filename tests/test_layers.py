"""The layers of bankapp, read from the source, not trusted: every import, at module level or inside a function,
goes down the layers (`LAYERS`), never up or across; the domain (`bankapp.lab`), the postgres store and the replays
import nothing of the web; the memory store never imports psycopg; the package root imports nothing; and no module
grows past `MAX_LINES`, no folder past `MAX_MODULES`."""

import ast
from pathlib import Path

import pytest

import bankapp

PACKAGE_ROOT = Path(bankapp.__file__).parent.parent
LAB = PACKAGE_ROOT / "bankapp" / "lab"
POSTGRES = PACKAGE_ROOT / "bankapp" / "postgres"
INTERLEAVE = PACKAGE_ROOT / "bankapp" / "interleave"
#: What the domain must never import: the web framework, its server, an HTTP client, and our own web package.
FORBIDDEN = ("flask", "werkzeug", "gunicorn", "flask_openapi3", "requests", "bankapp.web")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an import statement anywhere in `source` names, relative imports resolved.

    `from a import b` yields `a` and `a.b` (b may be a submodule), so
    `from .. import web` inside `bankapp.lab.x` is caught as `bankapp.web`.
    """
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


def forbidden(names: set[str]) -> list[str]:
    return sorted(name for name in names if any(name == f or name.startswith(f + ".") for f in FORBIDDEN))


def lab_modules() -> list[Path]:
    modules = sorted(LAB.rglob("*.py")) + sorted(POSTGRES.rglob("*.py")) + sorted(INTERLEAVE.rglob("*.py"))
    assert len(modules) >= 28, modules  # the scan really looks at the domain, the store and the replays
    assert any(path.parent == INTERLEAVE for path in modules)
    return modules


@pytest.mark.parametrize("path", lab_modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_domain_the_store_and_the_replays_import_nothing_of_the_web(path):
    names = imported_names(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    assert forbidden(names) == [], f"{module_name(path)} imports {forbidden(names)}"


def test_only_the_postgres_store_imports_psycopg_and_only_when_asked():
    """The memory store runs without psycopg: the lab imports nothing of `bankapp.postgres` (`boot` picks)."""
    for path in sorted(LAB.rglob("*.py")):
        source = path.read_text()
        names = imported_names(source, module_name(path), is_package=path.name == "__init__.py")
        assert not [name for name in names if name.startswith("psycopg")], path
        top_level = {
            node.module
            for node in ast.parse(source).body
            if isinstance(node, ast.ImportFrom) and node.module and "postgres" in node.module
        }
        assert top_level == set(), f"{path} imports {top_level} at module level"


def test_the_scan_resolves_relative_imports_and_would_catch_the_web():
    module = "bankapp.lab.lab"
    names = imported_names((LAB / "lab.py").read_text(), module)
    assert {"bankapp.settings", "bankapp.lab.bank", "bankapp.lab.store.MemoryStore"} <= names
    sources = {
        "from ..web import create_app": "bankapp.web",
        "from .. import web": "bankapp.web",
        "from ..web.problems import problem": "bankapp.web.problems",
        "import flask": "flask",
        "from werkzeug.exceptions import HTTPException": "werkzeug.exceptions",
        "def f():\n    import gunicorn.app.base": "gunicorn.app.base",
        "from flask_openapi3 import APIBlueprint": "flask_openapi3",
        "import requests": "requests",
    }
    for source, caught in sources.items():
        assert caught in forbidden(imported_names(source, module)), source
    assert forbidden(imported_names("from . import web_of_trust\nimport flasky", module)) == []
    assert "bankapp.lab.guards" in imported_names("from .guards import Guard", "bankapp.lab", is_package=True)


#: Which parts of bankapp each part may import, at module level or inside a function. The domain at the bottom
#: (over the settings), the stores and the replays over it, then the composition root (`boot`), the web service,
#: the server, the tools that measure it, and the command line over everything. The two shims at the root name
#: the server's modules for gunicorn's command line.
LAYERS = {
    "settings": set(),
    "lab": {"settings"},
    "interleave": {"settings", "lab"},
    "postgres": {"settings", "lab"},
    "isolation": {"settings"},
    "boot": {"settings", "lab", "postgres"},
    "explore": {"settings", "lab", "interleave", "postgres"},
    "rooms": {"settings", "lab"},
    "web": {"settings", "lab", "interleave", "isolation", "explore", "boot", "rooms"},
    "server": {"settings", "lab", "boot", "web"},
    "compare": {"settings", "lab", "server"},
    "sweep": {"settings", "lab", "server", "compare"},
    "exercise": {"settings", "lab", "interleave", "explore", "server", "compare"},
    "cli": {"settings", "interleave", "isolation", "explore", "boot", "web", "server", "compare", "sweep", "exercise"},
    "worker": {"server"},
    "wsgi": {"server"},
    "__main__": {"cli"},
}
#: The longest a module may grow, and the most modules a folder may hold, before it is split.
MAX_LINES, MAX_MODULES = 400, 12
#: Known to break the size rules, each with the work that ends it; the list only ever shrinks.
OVERSIZE = {}


def part(path: Path) -> str:
    """The layer of a module of bankapp: its first name under the package (`bankapp/lab/locks/table.py`: lab)."""
    return path.relative_to(PACKAGE_ROOT / "bankapp").with_suffix("").parts[0]


def bankapp_modules() -> list[Path]:
    return sorted(
        path
        for path in (PACKAGE_ROOT / "bankapp").rglob("*.py")
        if path.name != "__init__.py" or path.parent.name != "bankapp"
    )


def imports_of_bankapp(path: Path) -> set[str]:
    """The parts of bankapp a module imports anywhere in it (functions too), relative imports resolved."""
    names = imported_names(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    return {name.split(".")[1] for name in names if name.startswith("bankapp.") and not name.startswith("bankapp.__")}


@pytest.mark.parametrize("path", bankapp_modules(), ids=lambda path: str(path.relative_to(PACKAGE_ROOT)))
def test_every_import_goes_down_the_layers_even_inside_a_function(path):
    layer = part(path)
    assert layer in LAYERS, f"{path}: a new part of bankapp; give it its place in LAYERS"
    upward = sorted(imports_of_bankapp(path) - LAYERS[layer] - {layer})
    assert upward == [], f"{module_name(path)} ({layer}) imports {upward}; {layer} may import {sorted(LAYERS[layer])}"


def test_the_scan_sees_an_import_inside_a_function():
    source = "def make():\n    from ..postgres import PostgresLab\n    return PostgresLab\n"
    (lab,) = [path for path in bankapp_modules() if path.name == "lab.py" and part(path) == "lab"]
    assert "bankapp.postgres.PostgresLab" in imported_names(source, module_name(lab))
    assert "postgres" not in LAYERS["lab"]


def test_the_package_root_imports_nothing_until_create_app_is_asked_for():
    """`bankapp/__init__.py`: at module level only `__future__` and `typing` (its `create_app` is imported in the
    module's `__getattr__`, or for the type checker alone)."""
    tree = ast.parse((PACKAGE_ROOT / "bankapp" / "__init__.py").read_text())
    eager = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            eager |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            eager.add("." * node.level + (node.module or ""))
    assert eager <= {"__future__", "typing"}, eager


def test_no_module_over_the_line_limit_and_no_folder_over_the_module_limit():
    oversize = []
    for folder in [PACKAGE_ROOT / "bankapp", *sorted(p for p in (PACKAGE_ROOT / "bankapp").rglob("*") if p.is_dir())]:
        modules = sorted(folder.glob("*.py"))
        if not modules:
            continue
        name = str(folder.relative_to(PACKAGE_ROOT))
        if len(modules) > MAX_MODULES and name not in OVERSIZE:
            oversize.append(f"{name}: {len(modules)} modules")
        for module in modules:
            lines = len(module.read_text().splitlines())
            if lines > MAX_LINES and str(module.relative_to(PACKAGE_ROOT)) not in OVERSIZE:
                oversize.append(f"{module.relative_to(PACKAGE_ROOT)}: {lines} lines")
    assert oversize == [], oversize
