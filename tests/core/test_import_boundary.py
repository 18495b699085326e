"""The package's layout rules.

Everything that imports IPython, ipywidgets or ``tqdm.auto`` lives in ``notebook/``; the rest
(the core and every connector) imports none of them, at import time or inside a function. No
module takes part in an import circle.
"""

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
FRONT_END = "notebook"

FORBIDDEN = ("IPython", "ipywidgets")
FORBIDDEN_MODULES = ("tqdm.auto", "tqdm.notebook")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def core_modules() -> list[str]:
    """The modules outside ``notebook/``: the core and the connectors."""
    front_end = f"{PACKAGE_DIR.name}.{FRONT_END}"
    return [name for name in package_modules() if name != front_end and not name.startswith(front_end + ".")]


def module_path(module: str) -> Path:
    return package_modules()[module]


def imported_names(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The absolute names of the modules a module imports (inside functions too, unless
    ``top_level_only``); ``from X import y`` gives both ``X`` and ``X.y``."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def imported_roots(path: Path) -> set[str]:
    """The top-level packages a module imports anywhere, also inside functions."""
    return {name.split(".")[0] for name in imported_names(path)}


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


def test_the_core_module_list_is_found_by_folder() -> None:
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
    assert "deepanalyze_jupyter.notebook.magics" not in modules


@pytest.mark.parametrize("module", core_modules())
def test_nothing_outside_the_notebook_folder_imports_ipython_ipywidgets_or_tqdm_auto(module: str) -> None:
    path = module_path(module)
    assert imported_roots(path).isdisjoint(FORBIDDEN)
    assert imported_names(path).isdisjoint(FORBIDDEN_MODULES)


def test_no_module_takes_part_in_an_import_circle() -> None:
    """Imports between the package's modules (inside functions too) form no circle."""
    modules = package_modules()
    edges = {
        name: sorted(target for target in imported_names(path) if target in modules and target != name)
        for name, path in modules.items()
    }
    # A package imports its own submodules' names: that is not a circle through them.
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        stack.append(name)
        for target in edges[name]:
            if name.startswith(target + "."):  # a submodule importing its own package
                continue
            if state.get(target) == "open":
                raise AssertionError(" -> ".join([*stack[stack.index(target) :], target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in modules:
        if name not in state:
            visit(name)


def test_importing_the_core_loads_neither_ipython_nor_a_progress_bar() -> None:
    loaded = modules_after_import(*core_modules())
    assert "deepanalyze_jupyter.session" in loaded
    for name in (*FORBIDDEN, "tqdm.auto", "tqdm.notebook"):
        assert name not in loaded, f"{name} was imported"


def test_importing_the_package_loads_no_client_library() -> None:
    loaded = modules_after_import("deepanalyze_jupyter")
    for name in (*FORBIDDEN, "tqdm", "psycopg", "psycopg_pool", "azure.storage.blob"):
        assert name not in loaded, f"{name} was imported"
