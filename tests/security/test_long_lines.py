"""One-megabyte lines through the whole magic in a real kernel at ``--debug``.

Every layer a line crosses is on this path: the kernel's message handling and its debug log
(both masked), the input transformers, the history store, the magics' argument parsers, the
SQL parameter scanner, the server, the output mask and the error line. A scanner that backs
off quadratically takes hours on a megabyte; linear work takes a few seconds, so the bound is
far from noise. The canaries are searched in everything the kernel sent and logged, too.
"""

from __future__ import annotations

import time

import pytest

from tests.security.conftest import Planted
from tests.security.kernel import SpiedKernel

pytestmark = [pytest.mark.kernel, pytest.mark.integration, pytest.mark.timeout(600)]

MEGABYTE = 1_000_000
#: Wall seconds one cell with a 1 MB line may take (linear work: a few seconds when loaded).
BOUND = 60.0

CELLS = {
    "value in a query": "%%dsquery pg\nSELECT length('{quoted}') AS n",
    "unterminated quote in a query": "%%dsquery pg\nSELECT '{text}",
    "parameter name": "%%dsquery pg\nSELECT :{word}",
    "option value": "%datasource add wide --type postgresql --host {word} --password-env CANARY_PASSWORD",
    "source name": "%%dsquery {word}\nSELECT 1",
    "quoted path": "%datasource read pg '{text}",
}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_one_megabyte_line_is_answered_in_seconds(
    spied_kernel: SpiedKernel, planted: Planted, cell: str
) -> None:
    options = planted.pg_options()
    spied_kernel.ok(
        f"%datasource add pg --type postgresql --host {options['host']} --port {options['port']} "
        f"--dbname {options['dbname']} --user {options['user']} --password-env CANARY_PASSWORD"
    )
    text = ("a' :b $$ /* -- " * (MEGABYTE // 15))[:MEGABYTE]
    quoted = ("a :b $$ /* -- \\ " * (MEGABYTE // 16))[:MEGABYTE]
    word = "w" * MEGABYTE
    code = CELLS[cell].format(text=text, quoted=quoted, word=word)

    start = len(spied_kernel.messages)
    began = time.monotonic()
    reply = spied_kernel.run(code)
    took = time.monotonic() - began

    assert took < BOUND, f"{cell}: {took:.1f} s"
    if cell == "value in a query":
        assert reply["status"] == "ok", spied_kernel.error_texts(start)[:2000]
        assert str(MEGABYTE) in spied_kernel.ok("print(_.n[0])")
    else:
        assert reply["status"] == "error"
        error_line = spied_kernel.error_texts(start)
        assert error_line.count("\n") < 5, error_line[:2000]
    # The kernel still answers at once, and nothing it sent or logged holds a canary.
    spied_kernel.ok("%%dsquery pg\nSELECT 1 AS one")
    planted.book.check(f"long line: {cell}", spied_kernel.sent_texts())
    planted.book.check(f"long line, --debug log: {cell}", spied_kernel.log_text())
