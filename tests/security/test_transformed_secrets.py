"""A real kernel shows registered secrets escaped, encoded and cut: every message masks them.

The secrets reach the kernel only through environment variables. The notebook code
prints them through ``repr``, JSON, HTML, URL quoting and base64, displays them in a
DataFrame (text and HTML, where pandas cuts the long one), lists them with ``%whos`` and
raises them; then it removes a source and prints its secret again. Every message the
kernel sends back (iopub and replies) is searched for each secret in every form
(:func:`~deepanalyze_jupyter.redaction.secret_forms`) and for every 24-character piece
of each form. A secret equal to another option of its source is left unmasked, with a
warning, so that the mask does not tell it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from deepanalyze_jupyter.redaction import FRAGMENT_LENGTH, MASK, secret_forms
from tests.notebook.magics.test_kernel import TIMEOUT, Cell, Kernel

pytestmark = pytest.mark.kernel

#: Quotes, a backslash, a newline and HTML's special characters: every escaper changes it.
TRICKY = "bs\\q'uo\"te-Pw9\n<P&ss>&x"
#: An account key of 88 characters: pandas and %whos show it cut.
ACCOUNT_KEY = base64.b64encode(b"transformed-canary:" + os.urandom(47)).decode()
SAME_AS_USER = "analyst-4242"

ENVIRONMENT = {"CANARY_TRICKY": TRICKY, "CANARY_KEY": ACCOUNT_KEY, "CANARY_SAME": SAME_AS_USER}

SETUP = """
import base64, html, json, os, urllib.parse
import pandas as pd
from deepanalyze_jupyter.notebook.extension import get_session
session = get_session(get_ipython())
tricky, key = os.environ["CANARY_TRICKY"], os.environ["CANARY_KEY"]
session.add("pg", "postgresql", host="127.0.0.1", user="reader", secrets={"password": tricky}, test=False)
session.add("blob", "postgresql", host="127.0.0.1", user="keeper", secrets={"password": key}, test=False)
"""

SHOW = """
print(repr(tricky), [tricky, key], ascii(tricky))
print(json.dumps({"p": tricky, "k": key}), json.dumps(tricky, ensure_ascii=False))
print(html.escape(tricky), html.escape(tricky, quote=False))
print(urllib.parse.quote(tricky, safe=""), urllib.parse.quote_plus(tricky), urllib.parse.quote(key))
for prefix in (b"", b"u", b"us"):
    print(base64.b64encode(prefix + tricky.encode()), base64.b64encode(prefix + key.encode()))
print(repr(tricky.encode()), key[:30], key[40:])
display(pd.DataFrame({"secret": [tricky, key]}))
pd.DataFrame({"secret": [tricky, key]})
"""


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(
        env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), **ENVIRONMENT}, cwd=str(tmp_path)
    )
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield Kernel(client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _searched_forms(value: str) -> set[str]:
    """Each form of ``value``, and every 24-character piece of a longer form."""
    found: set[str] = set()
    for form in secret_forms(value):
        found.add(form)
        found.update(
            form[start : start + FRAGMENT_LENGTH] for start in range(len(form) - FRAGMENT_LENGTH + 1)
        )
    return found


def _leaks(cells: list[Cell], value: str) -> list[str]:
    texts = [cell.everything for cell in cells]
    texts += [json.dumps(json.loads(text), ensure_ascii=False) for text in texts]
    return sorted(form for form in _searched_forms(value) if any(form in text for text in texts))


def test_escaped_encoded_and_cut_secrets_are_masked_in_every_message(kernel: Kernel) -> None:
    kernel.ok("%load_ext deepanalyze_jupyter")
    kernel.ok(SETUP)
    shown = [kernel.ok(SHOW), kernel.ok("%whos")]
    raised = kernel.run("raise ValueError(tricky, key)")
    assert raised.reply["status"] == "error"
    shown.append(raised)
    kernel.ok("%datasource remove pg")
    kernel.ok("%datasource remove blob")
    after_removal = kernel.ok("print(tricky, key)")
    assert after_removal.stdout == f"{MASK} {MASK}\n"
    shown.append(after_removal)

    assert MASK in shown[0].stdout
    assert "text/html" in shown[0].result
    checked = sum(len(_searched_forms(value)) for value in (TRICKY, ACCOUNT_KEY)) * len(shown)
    assert _leaks(shown, TRICKY) == []
    assert _leaks(shown, ACCOUNT_KEY) == []
    print(f"transformed secrets: {checked} form x cell checks")


def test_a_secret_equal_to_another_option_is_not_masked_and_the_user_is_warned(kernel: Kernel) -> None:
    kernel.ok("%load_ext deepanalyze_jupyter")
    added = kernel.ok(
        "%datasource add same --type postgresql --host 127.0.0.1 --user analyst-4242 "
        "--password-env CANARY_SAME --no-test"
    )
    assert "SecretNotMaskedWarning: same: password cannot be masked in outputs" in added.stderr
    assert SAME_AS_USER not in added.stderr
    shown = kernel.ok("print(f\"connected as '{'analyst-4242'}'\")")
    assert shown.stdout == "connected as 'analyst-4242'\n"
