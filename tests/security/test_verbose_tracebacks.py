"""Failures under ``%xmode Verbose``: no secret in the traceback, nor in our frames' locals.

A verbose traceback shows every frame's arguments and the values on its lines; ``%debug``
and ``%pdb`` let the user look at every local of every frame, long after the error. Each
entry point (Session, magics) and each operation (add, update, test, query, ls, read)
fails here with canary secrets from the kernel's environment; every message the kernel
sent is searched, and a probe walks the frames of the last error (and the errors chained
to it) in the kernel, looking for a canary among the locals of the frames of this package.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import Planted
from tests.security.kernel import SpiedKernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300)]

#: Names the frames of the last error (and of the errors chained to it) that belong to this
#: package and hold a canary among their locals (as is, or repr-escaped).
FRAMES_PROBE = """\
import sys as _sys
def _frames_holding_canaries():
    canaries = [_os.environ[name] for name in _CANARIES]
    forms = {form for canary in canaries for form in (canary, repr(canary)[1:-1])}
    holding, seen, pending = [], set(), [_sys.last_value]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if "deepanalyze_jupyter" in frame.f_code.co_filename:
                shown = repr(frame.f_locals)
                if any(form in shown for form in forms):
                    holding.append(frame.f_code.co_name)
            tb = tb.tb_next
        pending += [error.__cause__, error.__context__]
    return holding
print("frames holding a canary:", _frames_holding_canaries())
"""


def _setup(planted: Planted, canaries: list[str]) -> str:
    return (
        "%xmode Verbose\n"
        "import os as _os\n"
        "from deepanalyze_jupyter.notebook.extension import get_session\n"
        "session = get_session(get_ipython())\n"
        f"pg = dict(host={planted.host!r}, port={planted.port}, dbname={planted.dbname!r}, "
        f"user={planted.role!r}, options='-c search_path={planted.schema}')\n"
        f"lake = dict(account_url={planted.blob_endpoint!r}, container={planted.container!r})\n"
        f"_CANARIES = {canaries!r}\n"
    )


def _failures(planted: Planted, wrong: str) -> list[str]:
    """Cells that fail, each holding the secret in a local variable on the failing line."""
    pg = (
        f"--type postgresql --host {planted.host} --port {planted.port} --dbname {planted.dbname} "
        f"--user {planted.role}"
    )
    typed = f"secret = _os.environ[{wrong!r}]\n"
    return [
        typed + "session.add('wrong', 'postgresql', secrets={'password': secret}, **pg)",
        typed + "session.add('nodb', 'postgresql', secrets={'password': secret}, **{**pg, 'dbname': 'no'})",
        typed + "session.add('badport', 'postgresql', secrets={'password': secret}, **{**pg, 'port': 'x'})",
        "dsn = _os.environ['CANARY_UNREACHABLE_DSN']\nsession.add('far', 'postgresql', dsn=dsn)",
        "sas = _os.environ['CANARY_TAMPERED_SAS']\n"
        "session.add('box', 'azure_blob', secrets={'sas_token': sas}, **lake)",
        typed + "session.update('warehouse', secrets={'password': secret})",
        "dsn = _os.environ['CANARY_UNREACHABLE_DSN']\nsession.update('warehouse', dsn=dsn)",
        typed + "session.add('later', 'postgresql', secrets={'password': secret}, test=False, **pg)\n"
        "session.test('later')",
        "session.query('later', 'SELECT 1')",
        "session.list_items('later')",
        "sas = _os.environ['CANARY_TAMPERED_SAS']\n"
        "session.add('box2', 'azure_blob', secrets={'sas_token': sas}, test=False, **lake)\n"
        "session.list_items('box2')",
        "session.read('box2', '2024/jan.csv')",
        f"%datasource add wrongm {pg} --password-env {wrong}",
        f"%datasource update warehouse --password-env {wrong}",
    ]


def _run_failures(kernel: SpiedKernel, planted: Planted, wrong: str) -> None:
    book = planted.book
    kernel.ok(
        "session.add('warehouse', 'postgresql', secrets={'password': _os.environ['CANARY_PASSWORD']}, **pg)"
    )
    for cell in _failures(planted, wrong):
        start = len(kernel.messages)
        reply = kernel.run(cell)
        assert reply["status"] == "error", (cell, reply)
        shown = kernel.error_texts(start)
        assert shown, cell
        book.check(f"verbose traceback: {cell.splitlines()[-1][:50]}", shown)
        probe = kernel.ok(FRAMES_PROBE)
        assert "frames holding a canary: []" in probe, (cell, probe)
        book.check(f"frames of the error: {cell.splitlines()[-1][:50]}", probe)
    book.check("kernel messages: verbose tracebacks", kernel.sent_texts())
    book.check("kernel log at --debug: verbose tracebacks", kernel.log_text())
    book.check("kernel history SQLite file: verbose tracebacks", kernel.history_bytes())


def test_verbose_tracebacks_and_frames_hold_no_secret(spied_kernel: SpiedKernel, planted: Planted) -> None:
    spied_kernel.ok(_setup(planted, ["CANARY_PASSWORD", "CANARY_WRONG", "CANARY_UNREACHABLE_DSN"]))
    _run_failures(spied_kernel, planted, "CANARY_WRONG")


def test_verbose_tracebacks_of_a_secret_that_escaping_changes(
    spied_kernel: SpiedKernel, planted: Planted
) -> None:
    """The same failures with a password holding quotes, a backslash and ``&<>``: a verbose
    traceback shows it repr-escaped (in a dict's repr), which the mask must catch too."""
    spied_kernel.ok(_setup(planted, ["CANARY_PASSWORD", "CANARY_ESCAPED", "CANARY_UNREACHABLE_DSN"]))
    _run_failures(spied_kernel, planted, "CANARY_ESCAPED")
