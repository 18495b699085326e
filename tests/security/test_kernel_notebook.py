"""A real kernel runs a notebook that handles canary secrets, and the saved file holds none.

The notebook uses the magics with secrets from its environment, the add form with secrets
set in its fields, hits every error path, and then prints, displays and raises the
decrypted secrets on purpose: output redaction must mask them before they leave the
kernel. The executed notebook is written with nbformat, as Jupyter would save it, and
searched byte for byte, like the kernel's SQLite history.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME
from nbclient import NotebookClient
from nbformat import NotebookNode

from deepanalyze_jupyter.redaction import MASK
from tests.notebooks.test_notebooks import OwnInterpreterKernelManager
from tests.security.conftest import Planted
from tests.security.test_magics import ENV

pytestmark = pytest.mark.kernel

CELL_TIMEOUT = 120
#: Tag of the cells that fail on purpose (nbclient goes on after them).
FAILS = "raises-exception"


def _notebook(planted: Planted, log: Path) -> NotebookNode:
    """The cells, none of which holds a secret in its source; IPython logs inputs and outputs
    to ``log`` (``%logstart -o``) and outputs to its history database (``db_log_output``)."""
    pg = (
        f"--type postgresql --host {planted.host} --port {planted.port} --dbname {planted.dbname} "
        f"--user {planted.role} --options '-c search_path={planted.schema}'"
    )
    lake = f"--type azure_blob --account-url {planted.blob_endpoint} --container {planted.container}"
    secrets = "--password-env CANARY_PASSWORD --sslpassword env:CANARY_SSLPASSWORD"
    box = f"--type azure_blob --container {planted.container}"
    far = (
        f"--type postgresql --host 127.0.0.1 --port {planted.unreachable_port} --connect-timeout 3 "
        "--user nobody"
    )
    cells: list[tuple[str, bool]] = [
        ("%load_ext deepanalyze_jupyter", False),
        (f"%logstart -o {log}\nget_ipython().history_manager.db_log_output = True", False),
        (
            "import logging, sys\nlogging.basicConfig(stream=sys.stderr, force=True)\n"
            "for name in ('deepanalyze_jupyter', 'psycopg', 'azure'):\n"
            "    logging.getLogger(name).setLevel(logging.DEBUG)",
            False,
        ),
        (f"%datasource add warehouse {pg} {secrets}", False),
        (f"%datasource add lake {lake} --sas-token-env CANARY_SAS", False),
        (f"%datasource add signed {box} --connection-string-env CANARY_CS_SAS", False),
        ("%datasource list", False),
        ("%datasource info warehouse", False),
        ("%datasource info lake", False),
        ("%datasource info signed", False),
        ("%datasource test warehouse", False),
        ("%datasource tables warehouse", False),
        ("%datasource columns warehouse orders", False),
        ("%datasource ls lake 2024/", False),
        ("%%dsquery warehouse -o orders\nSELECT * FROM orders ORDER BY id", False),
        ("%%dsquery lake -o sales\n2024/*.csv", False),
        ("%datasource read signed 2024/jan.csv", False),
        (f"%datasource add wrong {pg} --password-env CANARY_WRONG", True),
        (f"%datasource add far {far} --password-env CANARY_UNREACHABLE", True),
        (f"%datasource add keyed {box} --connection-string-env CANARY_CS_KEY", True),
        (f"%datasource add tampered {lake} --sas-token-env CANARY_TAMPERED_SAS", True),
        ("%%dsquery warehouse\nSELEC 1", True),
        ("%datasource read lake missing.csv", True),
        (f"%datasource add later {far} --password-env CANARY_NO_TEST --no-test", False),
        ("%dsquery later SELECT 1", True),
        (
            "from deepanalyze_jupyter.notebook.extension import get_session\n"
            "registry = get_session(get_ipython()).registry\n"
            "password = registry.get_config('warehouse', decrypt=True).secrets['password'].reveal()\n"
            "sas = registry.get_config('lake', decrypt=True).secrets['sas_token'].reveal()\n"
            "signed = registry.get_config('signed', decrypt=True).secrets['connection_string'].reveal()\n"
            "sig = signed.rsplit('sig=', 1)[1]\n"
            "print('password:', password)\n"
            "print('sas:', sas, file=sys.stderr)\n"
            "print('sig alone:', sig)",
            False,
        ),
        (
            "import pandas as pd\nfrom IPython.display import HTML, Markdown, display\n"
            "display(pd.DataFrame({'secret': [password, sas, sig]}))\n"
            "display(HTML(f'<b>{password}</b>'))\n"
            "display(Markdown(f'**{sas}**'))\n"
            "display({'text/plain': password, 'application/json': {'sig': sig}}, raw=True)",
            False,
        ),
        ("pd.DataFrame({'secret': [password]})", False),
        ("raise RuntimeError(f'leaked {password} and {sas}')", True),
        ("def check(value):\n    assert not value, value\ncheck(sig)", True),
        (
            "import os\nfrom deepanalyze_jupyter.notebook.widgets import add_form\n"
            "for source_id, field, variable in [('viaform', 'dsn', 'CANARY_DSN'), "
            "('wrongform', 'password', 'CANARY_WRONG')]:\n"
            "    form = add_form()\n"
            "    display(form)\n"
            "    form.type_select.value = 'postgresql'\n"
            "    form.id_field.value = source_id\n"
            f"    form.fields.controls['host'].value = {planted.host!r}\n"
            f"    form.fields.controls['port'].value = '{planted.port}'\n"
            f"    form.fields.controls['user'].value = {planted.role!r}\n"
            "    if field == 'dsn':\n"
            "        for name in ('host', 'port', 'user'):\n"
            "            form.fields.controls[name].value = ''\n"
            "    form.fields.controls[field].value = os.environ[variable]\n"
            "    form.add_button.click()\n"
            "    print(form.status.outcome, form.status.message)",
            False,
        ),
        (
            "canaries = [os.environ[name] for name in " + repr(sorted(ENV)) + " + ['CANARY_DSN']]\n"
            "inputs = [value for name, value in list(globals().items()) if name.startswith('_i')]\n"
            "copies = [*In, *_ih, *inputs]\n"
            "print('history copies holding a canary:', "
            "sum(any(canary in str(text) for canary in canaries) for text in copies))\n"
            "get_ipython().history_manager.writeout_cache()",
            False,
        ),
    ]
    notebook = nbformat.v4.new_notebook()
    for source, fails in cells:
        cell = nbformat.v4.new_code_cell(source)
        if fails:
            cell.metadata["tags"] = [FAILS]
        notebook.cells.append(cell)
    return notebook


def _text(cell: NotebookNode) -> str:
    return json.dumps(cell.get("outputs", []))


def _streams(cell: NotebookNode) -> str:
    """What the cell printed, each stream joined whole (a print may arrive in several messages)."""
    texts: dict[str, str] = {}
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            texts[output["name"]] = texts.get(output["name"], "") + output["text"]
    return "\n".join(texts.values())


def test_a_notebook_handling_canaries_saves_none(planted: Planted, tmp_path: Path) -> None:
    book = planted.book
    log = tmp_path / "ipython-log.py"
    notebook = _notebook(planted, log)
    for cell in notebook.cells:
        book.check("notebook cell sources", cell.source)
    env = {name: getattr(planted, attribute) for name, attribute in ENV.items()}
    env["CANARY_DSN"] = planted.dsn
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    history = tmp_path / "ipython" / "profile_default" / "history.sqlite"
    client = NotebookClient(
        notebook,
        kernel_manager_class=OwnInterpreterKernelManager,
        kernel_name=NATIVE_KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(tmp_path)}},
        ipython_hist_file=str(history),  # nbclient keeps it in memory unless told
    )
    client.execute(env={**os.environ, **env})
    saved = tmp_path / "executed.ipynb"
    nbformat.write(notebook, saved)

    cells = notebook.cells
    outputs = {cell.source.splitlines()[0]: cell for cell in cells}
    for cell in cells:
        book.check(f"kernel: {cell.source.splitlines()[0][:60]}", _text(cell))
        failed = any(
            output.output_type == "error" or "UsageError: " in output.get("text", "")
            for output in cell.outputs
        )
        assert failed is (FAILS in cell.metadata.get("tags", [])), (cell.source, _text(cell))
    printed = _streams(outputs["from deepanalyze_jupyter.notebook.extension import get_session"])
    assert f"password: {MASK}" in printed
    assert f"sas: {MASK}" in printed
    assert f"sig alone: {MASK}" in printed
    shown = _text(outputs["import pandas as pd"])
    # password and sig rows twice (text and HTML), HTML, Markdown, raw text and JSON; the long SAS
    # row may be cut by pandas' max_colwidth before its sig, and then shows no mask (and no secret).
    assert shown.count(MASK) >= 6
    assert MASK in _text(outputs["pd.DataFrame({'secret': [password]})"])
    raised = outputs["raise RuntimeError(f'leaked {password} and {sas}')"].outputs[0]
    assert raised.evalue == f"leaked {MASK} and {MASK}"
    assert "success Added 'viaform'" in _text(outputs["import os"])
    assert "error wrongform: authentication failed" in _text(outputs["import os"])
    assert "history copies holding a canary: 0" in _text(cells[-1])
    assert "widgets" in notebook.metadata
    nbformat.validate(nbformat.read(saved, as_version=4))

    book.check("saved notebook (outputs and widget state)", saved.read_text())
    book.check_file("saved notebook file", saved)
    with closing(sqlite3.connect(history)) as connection:
        rows = connection.execute("SELECT source, source_raw FROM history").fetchall()
    assert len(rows) >= len(cells) - 1
    book.check("kernel history SQLite rows", rows)
    with closing(sqlite3.connect(history)) as connection:
        kept_outputs = connection.execute("SELECT output FROM output_history").fetchall()
    assert kept_outputs  # db_log_output was on: the outputs were kept, masked
    book.check("kernel history SQLite outputs", kept_outputs)
    book.check_file("kernel history SQLite file", history)
    logged = log.read_text(encoding="utf-8")
    assert "#[Out]#" in logged
    assert "add warehouse" in logged
    book.check("IPython %logstart -o file", logged)
    book.check_file("IPython %logstart -o file (bytes)", log)
