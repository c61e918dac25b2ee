"""The domain (`bankapp.lab`), the postgres store (`bankapp.postgres`) and the replays (`bankapp.interleave`)
import nothing of the web, and the memory store never imports psycopg: read from the source, not trusted."""

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
