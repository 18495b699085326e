"""Every message a real kernel sends, while secrets are typed into forms and inspected.

A front end is played by the test: it sends the comm updates a browser sends when the user
leaves a field, clicks buttons, asks for Shift+Tab help and the debugger's variable views.
Every message the kernel sends (iopub, shell and control replies, comm messages), the
widget state the front end then holds (what a saved notebook holds), the kernel's own log
at ``--debug`` and a DEBUG log of the ``Comm`` logger are searched for every canary.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepanalyze_jupyter.redaction import MASK
from tests.security.conftest import Planted
from tests.security.kernel import SpiedKernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300)]

_IDS_RE = re.compile(r"ids: (\{.*\})")


def _check(kernel: SpiedKernel, planted: Planted, operation: str, comm_log: Path) -> None:
    """Search everything the kernel sent, the front end's widget state and both logs."""
    book = planted.book
    book.check(f"kernel messages: {operation}", kernel.sent_texts())
    book.check(f"front-end widget state (saved notebook): {operation}", kernel.models.states)
    book.check(f"kernel log at --debug: {operation}", kernel.log_text())
    book.check_file(f"Comm logger at DEBUG: {operation}", comm_log)
    book.check(f"kernel history SQLite file: {operation}", kernel.history_bytes())


def _open_form(kernel: SpiedKernel, planted: Planted, comm_log: Path) -> dict[str, str]:
    """Show the add form, fill its plain fields from the kernel; the model ids of its widgets."""
    printed = kernel.ok(
        "import logging\n"
        f"logging.basicConfig(filename={str(comm_log)!r}, level=logging.DEBUG, force=True)\n"
        "from deepanalyze_jupyter.notebook.widgets import add_form\n"
        "form = add_form()\n"
        "display(form)\n"
        "form.type_select.value = 'postgresql'\n"
        "form.id_field.value = 'viaform'\n"
        "c = form.fields.controls\n"
        f"c['host'].value, c['port'].value = {planted.host!r}, '{planted.port}'\n"
        f"c['dbname'].value, c['user'].value = {planted.dbname!r}, {planted.role!r}\n"
        "ids = {name: c[name].model_id for name in ('password', 'dsn', 'host', 'port', 'user')}\n"
        "ids.update(test=form.test_button.model_id, add=form.add_button.model_id)\n"
        "print('ids:', ids)"
    )
    match = _IDS_RE.search(printed)
    assert match is not None, printed
    ids: dict[str, str] = eval(match.group(1))  # a dict of str printed by the kernel
    return ids


def _status(kernel: SpiedKernel) -> str:
    return kernel.ok("print(form.status.outcome, form.status.message)").strip()


def test_a_secret_typed_into_the_add_form_is_in_no_message_log_or_saved_state(
    spied_kernel: SpiedKernel, planted: Planted, tmp_path: Path
) -> None:
    kernel = spied_kernel
    comm_log = tmp_path / "comm.log"
    ids = _open_form(kernel, planted, comm_log)

    kernel.comm_update(ids["password"], {"value": planted.password})
    assert kernel.models.states[ids["password"]]["value"] == ""  # the kernel answered at once
    _check(kernel, planted, "password typed", comm_log)
    kernel.click(ids["test"])
    assert _status(kernel).startswith("success Connection works"), _status(kernel)
    _check(kernel, planted, "Test passed, Add not clicked", comm_log)

    kernel.comm_update(ids["password"], {"value": planted.wrong_password})
    kernel.click(ids["test"])
    assert _status(kernel).startswith("error"), _status(kernel)
    _check(kernel, planted, "Test failed", comm_log)

    kernel.comm_update(ids["password"], {"value": planted.escaped_password})
    kernel.click(ids["add"])
    assert _status(kernel).startswith("error"), _status(kernel)
    _check(kernel, planted, "Add failed", comm_log)

    for name in ("host", "port", "user"):
        kernel.comm_update(ids[name], {"value": ""})
    kernel.comm_update(ids["dsn"], {"value": planted.dsn})
    shown = kernel.models.states[ids["dsn"]]["value"]
    assert MASK in shown, shown  # the DSN stays readable, its password masked
    assert "password" in shown, shown
    _check(kernel, planted, "DSN with a password typed", comm_log)
    kernel.click(ids["test"])
    assert _status(kernel).startswith("success Connection works"), _status(kernel)
    _check(kernel, planted, "Test of the DSN passed", comm_log)
    kernel.click(ids["add"])
    assert _status(kernel).startswith("success Added 'viaform'"), _status(kernel)
    _check(kernel, planted, "Add of the DSN worked", comm_log)
    assert kernel.ok("print(len(get_ipython().kernel.log.filters) > 0)").strip() == "True"

    kernel.ok("form.close()")
    _check(kernel, planted, "form closed", comm_log)
    comms = [message["content"] for message in kernel.messages if "comm" in message["header"]["msg_type"]]
    assert "echo_update" not in str(comms)


def test_shift_tab_and_the_debuggers_variable_views_mask_secrets(
    spied_kernel: SpiedKernel, planted: Planted, tmp_path: Path
) -> None:
    kernel = spied_kernel
    kernel.ok(
        f"%datasource add warehouse --type postgresql --host {planted.host} --port {planted.port} "
        f"--dbname {planted.dbname} --user {planted.role} --options '-c search_path={planted.schema}' "
        "--password-env CANARY_PASSWORD"
    )
    kernel.ok(
        "from deepanalyze_jupyter.notebook.extension import get_session\n"
        "config = get_session(get_ipython()).registry.get_config('warehouse', decrypt=True)\n"
        "password = config.secrets['password'].reveal()\n"
        "words = {'key': password, 'list': [password] * 3}"
    )
    reply = kernel.inspect("password")
    assert reply.get("found"), reply
    assert MASK in reply["data"]["text/plain"], reply
    kernel.inspect("words")
    kernel.debug("initialize", {"clientID": "test", "adapterID": "python"}, seq=1)
    variables = kernel.debug("inspectVariables", {}, seq=2)
    assert variables["success"], variables
    assert any(item["name"] == "password" for item in variables["body"]["variables"]), variables
    rich = kernel.debug("richInspectVariables", {"variableName": "password"}, seq=3)
    assert rich["success"], rich
    assert MASK in str(rich["body"]["data"]), rich
    kernel.debug("richInspectVariables", {"variableName": "words"}, seq=4)
    book = planted.book
    book.check("kernel messages: inspect and debugger replies", kernel.sent_texts())
    book.check("kernel log at --debug: inspect and debugger replies", kernel.log_text())
    book.check("kernel history SQLite file: inspect and debugger replies", kernel.history_bytes())
