"""What keeps a registry's secrets out of its errors, statuses and logs.

:class:`SecretGuard` tells the :class:`~deepanalyze_jupyter.redaction.Redactor` which
secrets to mask (and warns about any that cannot be), cleans the texts the registry shows,
and wraps the errors of an operation: a library error becomes the operation's own
:class:`~deepanalyze_jupyter.errors.DataSourceError`, and an error whose text or chain
shows a secret is replaced by one with neither.
"""

from __future__ import annotations

import asyncio
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn

from ..errors import DataSourceError
from ..models import DataSourceConfig, Secret
from ..redaction import MIN_REDACTED_LENGTH, Redactor, SecretNotMaskedWarning, mask_text

__all__ = ["SecretGuard", "clear_finished_frames"]


class SecretGuard:
    """Masks a registry's secrets in what it shows, and keeps them out of its errors."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __repr__(self) -> str:
        return f"<SecretGuard {self.redactor!r}>"

    def clean(self, text: str) -> str:
        """``text`` with every secret masked: the embedded ones and every watched one."""
        return self.redactor.redact(mask_text(text))

    def watch(self, config: DataSourceConfig, secrets: Mapping[str, Secret]) -> None:
        """Mask ``secrets`` in outputs from now on; warn about any that masking would give away."""
        unmasked = self.redactor.watch(
            {name: secret.reveal() for name, secret in secrets.items()}, ordinary=_ordinary_texts(config)
        )
        if unmasked:
            fields = ", ".join(sorted(unmasked))
            warnings.warn(
                SecretNotMaskedWarning(
                    f"{config.id}: {fields} cannot be masked in outputs: it is shorter than "
                    f"{MIN_REDACTED_LENGTH} characters, a common word or text of another option, and "
                    "masking it would tell it; outputs show it as it is. Use a longer, unique secret."
                ),
                stacklevel=2,
            )

    @contextmanager
    def watched_if_refused(self, source_id: str, secrets: Mapping[str, Secret]) -> Iterator[None]:
        """Keep watching ``secrets`` if the block raises (see :meth:`keep_watching`)."""
        try:
            yield
        except BaseException:
            self.keep_watching(source_id, secrets)
            raise

    def keep_watching(self, source_id: str, secrets: Mapping[str, Secret]) -> None:
        """Mask the secrets of a refused add, update or check for the kernel's lifetime: the
        error that refused them may be shown again at any time (``%debug``, ``%tb``), with
        them in its frames."""
        self.redactor.add(f"{source_id} (refused)", (secret.reveal() for secret in secrets.values()))

    @asynccontextmanager
    async def guard(self, source_id: str, wrap_as: type[DataSourceError]) -> AsyncIterator[None]:
        """Keep secrets out of errors, and wrap unexpected library errors as ``wrap_as``."""
        try:
            yield
        except DataSourceError as error:
            cleaned = self.clean(error.message)
            if cleaned == error.message and not self.holds_secret(error):
                raise
            _raise_detached(type(error)(cleaned, source=error.source))
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except Exception as error:
            text = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            message = self.clean(text)
            if self.holds_secret(error):  # the library's own text held a secret: do not chain it
                _raise_detached(wrap_as(message, source=source_id))
            raise wrap_as(message, source=source_id) from error

    def holds_secret(self, error: BaseException) -> bool:
        """Whether ``error`` or an error chained to it shows a secret in its str or repr."""
        pending, seen = [error], set()
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            try:
                texts = (str(current), repr(current))
            except Exception:
                return True  # cannot be checked, so cannot be shown
            if any(self.clean(text) != text for text in texts):
                return True
            pending.extend(chained for chained in (current.__cause__, current.__context__) if chained)
        return False


def clear_finished_frames(error: BaseException) -> None:
    """Clear the locals of the finished frames of ``error``'s traceback and of the errors
    chained to it (the frames still running, the caller's among them, are left alone)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending.extend(chained for chained in (current.__cause__, current.__context__) if chained)


def _raise_detached(error: DataSourceError) -> NoReturn:
    """Raise ``error`` with neither cause nor context: the error it replaces shows a secret."""
    try:
        raise error from None
    except DataSourceError as raised:
        raised.__context__ = None  # Python set it to the error being handled
        raise


def _ordinary_texts(config: DataSourceConfig) -> list[str]:
    """The texts of a source that are not secret: its id, name, type and option values."""
    texts = [config.id, config.name, config.type]
    pending: list[Any] = list(config.options.values())
    while pending:
        value = pending.pop()
        if isinstance(value, Mapping):
            pending += [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            pending += list(value)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            texts.append(str(value))
    return texts
