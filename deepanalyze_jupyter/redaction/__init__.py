"""Masking of secrets, in structures meant for display and in free text.

Two tools live here, and nothing else in the package masks secrets by itself:

- :func:`sanitize` masks what *looks* secret: values under secret-sounding keys at
  any depth (case-insensitive) and secrets embedded in strings (the password in a
  PostgreSQL URI or key=value DSN, ``AccountKey=``/``SharedAccessSignature=`` in an
  Azure connection string, ``sig=`` in a SAS URL).
- :class:`Redactor` masks what *is* secret: every value registered with it, in every
  form a display or serializer gives it (:func:`secret_forms`) and in the pieces a
  display cuts long values into, wherever it appears in a text. It is the safety net
  under outputs and tracebacks, and it keeps keyed hashes of those texts, never the
  texts.

Every scan here is linear in the length of the text. The parts: ``patterns`` (what looks
secret), ``forms`` (what a secret looks like once displayed) and ``redactor``.
"""

from __future__ import annotations

from .forms import (
    COMMON_WORDS,
    FRAGMENT_LENGTH,
    MIN_REDACTED_LENGTH,
    is_unmaskable,
    masked_texts,
    secret_forms,
)
from .patterns import MASK, is_secret_key, mask_text, sanitize
from .redactor import Redactor, SecretNotMaskedWarning

__all__ = [
    "COMMON_WORDS",
    "FRAGMENT_LENGTH",
    "MASK",
    "MIN_REDACTED_LENGTH",
    "Redactor",
    "SecretNotMaskedWarning",
    "is_secret_key",
    "is_unmaskable",
    "mask_text",
    "masked_texts",
    "sanitize",
    "secret_forms",
]
