"""In a real kernel the form functions return widgets, and load the extension when needed."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.kernel

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_forms_are_widgets_in_a_kernel() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from deepanalyze_jupyter.notebook.widgets import add_form, browse_form\nadd_form()"
        ),
        nbformat.v4.new_code_cell("'datasource' in get_ipython().magics_manager.magics['line']"),
        nbformat.v4.new_code_cell("browse_form()"),
    ]
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    add_output, loaded_output, browse_output = (cell.outputs for cell in notebook.cells)
    assert WIDGET_VIEW in add_output[0]["data"], add_output
    assert loaded_output[0]["data"]["text/plain"] == "True"
    assert WIDGET_VIEW in browse_output[0]["data"], browse_output
