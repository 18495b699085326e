"""Completion of the magics: what the position in the line means, and nothing else.

Checked through IPython's own completer and through a real kernel's ``complete_request``.
"""

from __future__ import annotations

import keyword
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client.manager import KernelManager

from deepanalyze_jupyter.session import Session
from tests.notebook.magics.test_kernel import TIMEOUT, Kernel

from .conftest import run

#: Files of the local source (``files``), and local files next to it (``data/``).
SOURCE_FILES = ("sales/2024/jan.csv", "sales/2024/feb.csv", "sample.csv", "other.txt")
LOCAL_FILES = ("data/abs.csv", "data/abc.parquet", "data/sub/x.csv")
SUBCOMMANDS = {"add", "list", "info", "test", "update", "remove", "ls", "read", "tables", "columns"}
SUBCOMMANDS |= {"cache", "browse", "save", "load", "forget", "write"}


def make_files(root: Path) -> None:
    for name in (*(f"source/{path}" for path in SOURCE_FILES), *LOCAL_FILES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a\n1\n")


REAL_TYPES = {"azure_blob", "local", "postgresql", "sqlite"}


def expectations(types: set[str] = REAL_TYPES) -> dict[str, set[str]]:
    """What completing each line offers, after ``ls files --recursive`` was run once."""
    return {
        "%datasource ": SUBCOMMANDS,
        "%datasource t": {"test", "tables"},
        "%datasource ls ": {"files"},
        "%datasource ls files sa": {"sales/", "sample.csv"},
        "%datasource ls files sales/": {"sales/2024/"},
        "%datasource read files sales/2024/": {"sales/2024/jan.csv", "sales/2024/feb.csv"},
        "%datasource read files sample.csv o": {"other.txt"},
        "x = %datasource ls files o": {"other.txt"},
        "%datasource add x --type ": types,
        "%datasource add x --type=sq": {"sqlite"},
        "%datasource add x --type local --path data/": {"data/abs.csv", "data/abc.parquet", "data/sub/"},
        "%datasource add x --type local --path data/ab": {"data/abs.csv", "data/abc.parquet"},
        "%datasource add x --type sqlite --read-only ": {"true", "false"},
        "%datasource add x --type postgresql --sslmode v": {"verify-ca", "verify-full"},
        "%datasource add x --type azure_blob --auth s": {"sas_token", "service_principal"},
        "%datasource ls files --re": {"--recursive", "--refresh"},
        "%datasource cache ": {"clear"},
        "%datasource cache clear ": {"files"},
        "%%dsquery ": {"files"},
        "%dsquery fi": {"files"},
    }


def completions(shell: InteractiveShell, code: str) -> set[str]:
    """What IPython's completer offers at the end of ``code``."""
    with provisionalcompleter():
        return {completion.text for completion in shell.Completer.completions(code, len(code))}


@pytest.fixture
def files(
    shell: InteractiveShell, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Session:
    """A local source ``files`` listed once (the listing is cached); the cwd holds ``data/``."""
    make_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert run(shell, f"%datasource add files --type local --path '{tmp_path / 'source'}'").error is None
    assert run(shell, "_ = %datasource ls files --recursive").error is None
    return session


@pytest.mark.parametrize(
    ("code", "expected"), list(expectations(REAL_TYPES | {"fakesql", "fakefiles"}).items())
)
def test_completion_offers_what_the_position_means_and_nothing_else(
    shell: InteractiveShell, files: Session, code: str, expected: set[str]
) -> None:
    assert completions(shell, code) == expected


def test_completion_of_items_uses_the_cached_listing_only(
    shell: InteractiveShell, files: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("completion called the source")

    monkeypatch.setattr(files.registry, "list_items", no_listing)
    assert completions(shell, "%datasource ls files sa") == {"sales/", "sample.csv"}
    files.registry.clear_cache("files")
    # Nothing cached: the word as typed (a completion that adds nothing), and no %save or sa* name.
    assert completions(shell, "%datasource ls files sa") == {"sa"}


def test_no_python_names_keywords_or_other_magics_on_a_magic_line(
    shell: InteractiveShell, files: Session
) -> None:
    shell.user_ns.update({"data": 1, "sample_variable": 2, "abs_value": 3})
    offered = completions(shell, "%datasource ")
    assert offered == SUBCOMMANDS
    assert not offered & set(keyword.kwlist)
    assert completions(shell, "%datasource ls files sam") == {"sample.csv"}
    assert completions(shell, "%datasource add x --type local --path data/ab") == {
        "data/abs.csv",
        "data/abc.parquet",
    }
    assert completions(shell, "%datasource ls files zz") == {"zz"}
    assert completions(shell, "%datasource info files --nope") == {"--nope"}
    # Python code elsewhere completes as always.
    assert "sample_variable" in completions(shell, "sample_v")


def test_completion_is_removed_with_the_extension(ipython: InteractiveShell) -> None:
    before = list(ipython.Completer.custom_matchers)
    ipython.extension_manager.load_extension("deepanalyze_jupyter")
    assert len(ipython.Completer.custom_matchers) == len(before) + 1
    ipython.extension_manager.unload_extension("deepanalyze_jupyter")
    assert ipython.Completer.custom_matchers == before


@pytest.fixture
def plain_kernel(tmp_path: Path) -> Iterator[Kernel]:
    """A kernel (no service needed) started in ``tmp_path``, the extension loaded."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}, cwd=str(tmp_path))
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        kernel = Kernel(client)
        kernel.ok("%load_ext deepanalyze_jupyter")
        yield kernel
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def kernel_completions(kernel: Kernel, code: str) -> set[str]:
    """The matches of a real ``complete_request`` at the end of ``code``."""
    msg_id = kernel.client.complete(code, len(code))
    while True:
        reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    assert content["status"] == "ok", content
    return set(content["matches"])


@pytest.mark.kernel
def test_completion_through_a_real_kernel(plain_kernel: Kernel, tmp_path: Path) -> None:
    make_files(tmp_path)
    plain_kernel.ok(f"%datasource add files --type local --path '{tmp_path / 'source'}'")
    plain_kernel.ok("data, sample_variable = 1, 2")
    assert kernel_completions(plain_kernel, "%datasource ls files sa") == {"sa"}  # nothing listed yet
    plain_kernel.ok("_ = %datasource ls files --recursive")
    for code, expected in expectations().items():
        assert kernel_completions(plain_kernel, code) == expected, code


@pytest.mark.kernel
def test_a_bad_config_value_fails_the_cell_in_a_real_kernel(plain_kernel: Kernel) -> None:
    cell = plain_kernel.run("%config DataSourceMagics.autolimit = -1")
    assert cell.reply["status"] == "error", cell.reply
    assert cell.reply["ename"] == "SettingRefused"
    errors = cell.of_type("error")
    assert len(errors) == 1
    assert errors[0]["traceback"] == [
        "UsageError: %config DataSourceMagics: autolimit must be a whole number from 0 (no limit) "
        "to 1,000,000,000,000; nothing was changed"
    ]
    assert "ERROR" not in cell.stderr
    assert plain_kernel.ok("%config DataSourceMagics.autolimit").result["text/plain"] == "100000"
