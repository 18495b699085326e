"""Paths in registered sources as one string: ``dsrc://SOURCE/path`` (the filesystem's URLs)."""

from __future__ import annotations

from .errors import ConfigurationError, quoted

__all__ = ["PROTOCOL", "split_source_url"]

#: The protocol of paths in sources; no fsspec implementation uses it.
PROTOCOL = "dsrc"


def split_source_url(text: str) -> tuple[str, str] | None:
    """``dsrc://lake/x.csv`` (or ``dsrc:lake/x.csv``) -> ``("lake", "x.csv")``; ``None`` for other paths."""
    if not text.startswith(f"{PROTOCOL}:"):
        return None
    rest = text[len(PROTOCOL) + 1 :]
    source_id, _, path = (rest[2:] if rest.startswith("//") else rest).partition("/")
    if not source_id:
        raise ConfigurationError(f"{PROTOCOL}:// paths start with a source id: {PROTOCOL}://SOURCE/path")
    if not path.strip("/"):
        raise ConfigurationError(
            f"{quoted(text, 80)} names no file: {PROTOCOL}://SOURCE/path/to/file", source=source_id
        )
    return source_id, path
