"""References to secrets: what a sources file holds in place of a secret, and how one resolves.

A reference says where a secret comes from, never what it is:

- ``env:VAR``: the kernel's environment variable ``VAR``, read at each connect;
- ``prompt``: a hidden prompt on the source's first connect in a kernel (kept, encrypted,
  for the kernel's lifetime);
- ``keyring:SERVICE/USERNAME``: an entry of the system keyring (the optional ``keyring``
  package);
- ``none``: the client library finds the credential itself (``~/.pgpass``, a service
  file, a client certificate, peer or trust authentication, ``DefaultAzureCredential``).

A reference is resolved only inside a connector's connect (:class:`SecretResolver` is
called by :meth:`~deepanalyze_jupyter.credentials.EncryptedSecrets.reveal`), and what it
resolves to is masked in every output from then on.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..credentials import CredentialManager
from ..errors import ConfigurationError, CredentialError
from ..models import Secret
from ..redaction import Redactor

__all__ = [
    "REFERENCE_FORMS",
    "SecretReference",
    "SecretResolver",
    "parse_reference",
]

#: The forms a reference takes, for messages.
REFERENCE_FORMS = "env:VAR, prompt, keyring:SERVICE/USERNAME or none"

ReferenceKind = Literal["env", "prompt", "keyring", "none"]

_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A keyring service and user name: printable, no spaces at the ends, one '/' between them.
_KEYRING_PART_RE = re.compile(r"[^\s/][^/]{0,200}")
_KEYRING_EXTRA = "the keyring package is not installed: pip install 'deepanalyze-jupyter[keyring]'"


@dataclass(frozen=True)
class SecretReference:
    """Where one secret field comes from: ``kind`` and its ``target`` (a variable, a keyring entry)."""

    kind: ReferenceKind
    target: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind

    def shown(self, environ: Any = None) -> str:
        """The reference as messages and listings show it.

        An ``env:`` reference whose variable is not set does not name it: what was written
        there may be a secret pasted in place of a name.
        """
        environ = os.environ if environ is None else environ
        if self.kind == "env" and self.target not in environ:
            return "env:<not set>"
        return str(self)

    def missing(self, environ: Any = None) -> str | None:
        """What keeps the reference from resolving now (without resolving it), or ``None``.

        A prompt and ``none`` always can; an environment variable must be set; a keyring
        reference needs the package and a backend.
        """
        if self.kind == "env":
            environ = os.environ if environ is None else environ
            if self.target not in environ:
                return "the environment variable named in the file is not set"
            return None if environ[self.target] else f"environment variable {self.target} is empty"
        if self.kind == "keyring":
            return _keyring_problem()
        return None


def parse_reference(
    text: object, *, source: str, field: str, refused: str = "the source is not loaded"
) -> SecretReference:
    """Read a reference written in a sources file; anything else is refused without being shown.

    ``refused`` ends the refusal: what came of it (a load leaves the source out; a save
    writes nothing).
    """
    if isinstance(text, str):
        kind, colon, target = text.strip().partition(":")
        if not colon and kind in ("prompt", "none"):
            return SecretReference(kind)  # type: ignore[arg-type]
        if colon and kind == "env" and _VARIABLE_RE.fullmatch(target):
            return SecretReference("env", target)
        if colon and kind == "keyring" and _keyring_parts(target) is not None:
            return SecretReference("keyring", target)
    raise ConfigurationError(
        f"the value of secret {field!r} is not a reference ({REFERENCE_FORMS}); a secret is never "
        f"kept in a sources file, so this value is not shown and {refused}",
        source=source,
    )


def _keyring_parts(target: str) -> tuple[str, str] | None:
    service, slash, username = target.rpartition("/")
    if slash and _KEYRING_PART_RE.fullmatch(service) and _KEYRING_PART_RE.fullmatch(username):
        return service, username
    return None


class SecretResolver:
    """Resolves one field's reference when a connector's connect asks for the secret.

    What it gets is masked in outputs from then on. A prompted secret is asked once per
    kernel and kept Fernet-encrypted; the others are read afresh at each connect, so a
    rotated variable or keyring entry is picked up.
    """

    __slots__ = ("_ask", "_credentials", "_redactor", "_token", "field", "reference", "source")

    def __init__(
        self,
        reference: SecretReference,
        *,
        source: str,
        field: str,
        credentials: CredentialManager,
        redactor: Redactor,
        ask: Callable[[str], str] | None = None,
    ) -> None:
        self.reference = reference
        self.source = source
        self.field = field
        self._credentials = credentials
        self._redactor = redactor
        self._ask = ask
        self._token: bytes | None = None

    def __repr__(self) -> str:
        return f"<SecretResolver {self.source}.{self.field} from {self.reference.shown()}>"

    def __call__(self) -> Secret | None:
        """The secret now, or ``None`` when the library finds the credential itself."""
        secret = self._resolve()
        if secret is not None:
            self._redactor.watch({self.field: secret.reveal()}, ordinary=[self.source])
        return secret

    def _resolve(self) -> Secret | None:
        kind = self.reference.kind
        if kind == "env":
            return self._from_environment()
        if kind == "prompt":
            return self._from_prompt()
        if kind == "keyring":
            return self._from_keyring()
        return None

    def _fail(self, problem: str) -> CredentialError:
        return CredentialError(f"{self.field} ({self.reference.shown()}): {problem}", source=self.source)

    def _from_environment(self) -> Secret:
        value = os.environ.get(self.reference.target)
        if not value:
            state = "is not set" if value is None else "is empty"
            raise self._fail(f"the environment variable {state} in this kernel; set it and try again")
        return Secret(value)

    def _from_prompt(self) -> Secret:
        if self._token is not None:
            return self._credentials.decrypt(self._token, source=self.source, field=self.field)
        # getpass is looked up at call time: ipykernel replaces it while a cell runs.
        ask = self._ask or getpass.getpass
        try:
            value = ask(f"{self.field} for {self.source}: ")
        except Exception:  # StdinNotImplementedError, EOFError: no way to ask here
            raise self._fail(
                "cannot prompt here (this front end takes no input); save the source with an "
                "env: or keyring: reference instead"
            ) from None
        if not value:
            raise self._fail("nothing was entered")
        self._token = self._credentials.encrypt(value)
        return Secret(value)

    def _from_keyring(self) -> Secret:
        problem = _keyring_problem()
        if problem:
            raise self._fail(problem)
        import keyring
        from keyring.errors import KeyringError

        service, username = _keyring_parts(self.reference.target) or ("", "")
        try:
            value = keyring.get_password(service, username)
        except KeyringError as error:
            raise self._fail(f"the keyring could not be read ({type(error).__name__})") from None
        if not value:
            raise self._fail("there is no such entry in the keyring")
        return Secret(value)


def _keyring_problem() -> str | None:
    """Why keyring references cannot resolve on this machine, or ``None`` when they can."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return _KEYRING_EXTRA
    if isinstance(keyring.get_keyring(), fail.Keyring):
        return (
            "no keyring backend is available on this machine (as on a headless Linux server); "
            "use an env: reference instead"
        )
    return None
