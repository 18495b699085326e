"""Saved sources: definitions kept in TOML files across kernel restarts, secrets only by reference."""

from __future__ import annotations

from .file import PROJECT_FILE_NAME, SavedSource, project_sources_file, user_sources_file
from .references import SecretReference, parse_reference
from .store import SavedSources

__all__ = [
    "PROJECT_FILE_NAME",
    "SavedSource",
    "SavedSources",
    "SecretReference",
    "parse_reference",
    "project_sources_file",
    "user_sources_file",
]
