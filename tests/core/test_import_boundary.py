"""The core imports neither IPython nor ipywidgets, and no progress bar at import time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import deepanalyze_jupyter

PACKAGE_DIR = Path(deepanalyze_jupyter.__file__).parent

#: The core's own modules; every connector module is core too. The rest of the package
#: (magics, widgets, extension and their helpers) is the IPython glue.
CORE = (
    "errors",
    "models",
    "credentials",
    "redaction",
    "registry",
    "runner",
    "session",
    "cache",
    "frames",
    "progress",
    "formats",
    "globs",
)

FORBIDDEN = ("IPython", "ipywidgets")


def core_modules() -> list[str]:
    """The package, its core modules and every connector module found on disk."""
    names = ["deepanalyze_jupyter"]
    names += [f"deepanalyze_jupyter.{name}" for name in CORE if (PACKAGE_DIR / f"{name}.py").exists()]
    names += ["deepanalyze_jupyter.connectors"]
    names += sorted(
        f"deepanalyze_jupyter.connectors.{path.stem}"
        for path in (PACKAGE_DIR / "connectors").glob("*.py")
        if path.stem != "__init__"
    )
    return names


def module_path(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    package = PACKAGE_DIR / relative / "__init__.py"
    return package if package.exists() else (PACKAGE_DIR / relative).with_suffix(".py")


def imported_roots(path: Path) -> set[str]:
    """The top-level packages a module imports anywhere, also inside functions."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def modules_after_import(*modules: str) -> set[str]:
    """The names in ``sys.modules`` of a fresh interpreter after importing ``modules``."""
    script = textwrap.dedent(
        f"""
        import importlib, json, sys
        for name in {list(modules)!r}:
            importlib.import_module(name)
        print(json.dumps(sorted(sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout))


def test_the_core_module_list_is_found() -> None:
    modules = core_modules()
    for expected in (
        "errors",
        "models",
        "credentials",
        "redaction",
        "registry",
        "runner",
        "session",
        "cache",
    ):
        assert f"deepanalyze_jupyter.{expected}" in modules
    assert "deepanalyze_jupyter.connectors.base" in modules
    assert "deepanalyze_jupyter.magics" not in modules


@pytest.mark.parametrize("module", core_modules())
def test_no_core_module_mentions_ipython_or_ipywidgets(module: str) -> None:
    assert imported_roots(module_path(module)).isdisjoint(FORBIDDEN)


def test_importing_the_core_loads_neither_ipython_nor_a_progress_bar() -> None:
    loaded = modules_after_import(*core_modules())
    assert "deepanalyze_jupyter.session" in loaded
    for name in (*FORBIDDEN, "tqdm.auto", "tqdm.notebook"):
        assert name not in loaded, f"{name} was imported"


def test_importing_the_package_loads_no_client_library() -> None:
    loaded = modules_after_import("deepanalyze_jupyter")
    for name in (*FORBIDDEN, "tqdm", "psycopg", "psycopg_pool", "azure.storage.blob"):
        assert name not in loaded, f"{name} was imported"
