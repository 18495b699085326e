"""The README's short tour, run for real against the bundled data in ``notebooks/data``.

    python tests/tour.py            # print the tour block as this run gives it
    python tests/tour.py --write    # put it into README.md, between its ```text fences

``tests/test_readme.py`` checks that the README shows what a run prints, so the tour cannot
drift from the package: after a change of output, run this with ``--write``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HEADING = "## A short tour"
OPEN_FENCE = "```text\n"
CLOSE_FENCE = "\n```\n"
#: Error lines longer than this are wrapped; a table is shown as pandas prints it.
WRAP = 100


@dataclass(frozen=True)
class Cell:
    """One input of the tour, and how much of its output the README shows."""

    code: str
    head: int | None = None  # show the first ``head`` lines of the output, then "..."
    tail: int = 0  # and its last ``tail`` lines after the "..."


CELLS = (
    Cell("%load_ext deepanalyze_jupyter"),
    Cell("%datasource add shop --type sqlite --path data/shop.db"),
    Cell("%datasource add files --type local --path data/files"),
    Cell("%datasource list"),
    Cell("%datasource tables shop"),
    Cell("%datasource columns shop orders", head=3),
    Cell('region = "EU"'),
    Cell(
        "%%dsquery shop -o eu_orders\n"
        "SELECT order_id, quantity, discount, ordered_at FROM orders WHERE region = :region",
        head=2,
    ),
    Cell(
        "%%dsquery shop --limit 5\nSELECT order_id, ordered_at, region, status FROM orders ORDER BY order_id",
        head=1,
    ),
    Cell("%datasource ls files", head=3),
    Cell("%datasource read files sales/*.csv -o sales --source-column file", head=2, tail=1),
    Cell("%datasource read files ../shop.db"),
    Cell("%datasource add warehouse --type postgresql --host db --user me --password hunter2"),
)


def run_tour() -> str:
    """Run every cell of the tour in a new IPython shell from ``notebooks/``; the block's text."""
    with _in_folder(ROOT / "notebooks"), tempfile.TemporaryDirectory() as ipython_dir:
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell(config=config, ipython_dir=ipython_dir)
        with pd.option_context("display.width", 200, "display.max_columns", None):
            shown = [_shown(cell, _output(shell, cell.code)) for cell in CELLS]
        shell.extension_manager.unload_extension("deepanalyze_jupyter")
    return "\n\n".join(shown)


def _output(shell: InteractiveShell, code: str) -> list[str]:
    """What a user sees after ``code``: its printed text, then its value or its error."""
    printed = io.StringIO()
    value = None
    with redirect_stdout(printed), redirect_stderr(printed):
        try:
            value = _run(shell, code)
        except UsageError as error:
            print(f"UsageError: {error}")
    lines = printed.getvalue().splitlines()
    if value is not None:
        lines += repr(value).splitlines()
    return lines


def _run(shell: InteractiveShell, code: str) -> object:
    """Run a line magic, a cell magic or Python code; return the magic's value."""
    first, _, body = code.partition("\n")
    if first.startswith("%%"):
        name, _, line = first[2:].partition(" ")
        return shell.run_cell_magic(name, line, body)
    if first.startswith("%"):
        name, _, line = first[1:].partition(" ")
        return shell.run_line_magic(name, line)
    shell.run_cell(code, store_history=False).raise_error()
    return None


def _shown(cell: Cell, output: list[str]) -> str:
    """The cell and its output as the README shows them: cut, and long error lines wrapped."""
    if cell.head is not None and len(output) > cell.head + cell.tail:
        output = [*output[: cell.head], "...", *(output[-cell.tail :] if cell.tail else [])]
    wrapped = [
        part
        for line in output
        for part in (
            textwrap.wrap(line, WRAP, break_long_words=False, break_on_hyphens=False)
            if line.startswith("UsageError: ")
            else [line]
        )
    ]
    return "\n".join([cell.code, *wrapped])


@contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def readme_tour(text: str) -> tuple[int, int]:
    """Where the tour block's text starts and ends in the README ``text``."""
    start = text.index(OPEN_FENCE, text.index(HEADING)) + len(OPEN_FENCE)
    return start, text.index(CLOSE_FENCE, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="put the tour into README.md")
    tour = run_tour()
    if not parser.parse_args().write:
        print(tour)
        return
    text = README.read_text(encoding="utf-8")
    start, end = readme_tour(text)
    README.write_text(text[:start] + tour + text[end:], encoding="utf-8")
    print(f"wrote the tour into {README}")


if __name__ == "__main__":
    sys.exit(main())
