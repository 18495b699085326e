"""Widget forms for notebooks: add a data source, and browse one.

``add_form()`` shows the type's fields (made from its connector's option specs), Test
connection and Add buttons and a status line; ``browse_form()`` lists a source's folders or
schemas, previews an item and loads it into a variable. Both call only the registry, through
the shell's session, and run the ``interactive`` way: disable the buttons, say what runs,
report one clear line (never a traceback or a secret), enable the buttons again.

Secrets are typed into ``Password`` fields. Jupyter saves widget state into the notebook
file, so a typed secret never stays in a widget's state: the kernel takes it when the user
leaves the field, keeps it Fernet-encrypted, and empties the field (a text that embeds a
secret, such as a connection string with a password, stays shown with the secret masked);
it is never echoed to front ends (see ``_sealed``). Secrets are forgotten after an Add,
whether it worked or not, and after a failed Test; a successful Test keeps them, encrypted,
so that Add can follow.

In a terminal IPython, or a script, nothing can draw a form: the functions return a short
message that points to the magics instead.
"""

from __future__ import annotations

from IPython import get_ipython

from ...session import Session
from .add import AddSourceForm
from .browse import BrowseForm
from .fields import SourceFields
from .frontend import FormUnavailable, session_for, shows_widgets
from .status import StatusLine

__all__ = [
    "AddSourceForm",
    "BrowseForm",
    "FormUnavailable",
    "SourceFields",
    "StatusLine",
    "add_form",
    "browse_form",
]

ADD_HINT = (
    "The data-source form needs a Jupyter front end that shows widgets (JupyterLab, Notebook 7, "
    "VS Code). Here, give the options on the line instead, e.g. "
    "%datasource add sales --type postgresql --host db.example.org --user analyst --prompt password "
    "(a secret comes from a hidden prompt, --prompt NAME, or from the environment, --NAME-env VAR); "
    "%datasource add --type TYPE --help lists a type's options."
)
BROWSE_HINT = (
    "The browse form needs a Jupyter front end that shows widgets (JupyterLab, Notebook 7, "
    "VS Code). Here, use %datasource list, %datasource ls ID [PREFIX], %datasource read and "
    "%%dsquery instead."
)


def add_form(session: Session | None = None) -> AddSourceForm | FormUnavailable:
    """The form that adds a data source (``%datasource add`` with no arguments shows it)."""
    shell = get_ipython()
    if not shows_widgets(shell):
        return FormUnavailable(ADD_HINT)
    return AddSourceForm(session or session_for(shell))


def browse_form(session: Session | None = None, source_id: str | None = None) -> BrowseForm | FormUnavailable:
    """The form that browses sources, starting at ``source_id`` (``%datasource browse [ID]``)."""
    shell = get_ipython()
    if not shows_widgets(shell):
        return FormUnavailable(BROWSE_HINT)
    return BrowseForm(session or session_for(shell), shell.user_ns, source_id)
