"""``%datasource`` subcommands that manage sources: add, update, list, info, test, remove, cache, browse."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from IPython.core.error import UsageError

from ...errors import DataSourceError, DataSourceExists
from ...models import validate_source_id
from ...redaction import MASK, sanitize
from ...registry import format_moment
from ...saved.references import parse_reference
from ..magic_args import OptionValues, add_parser, peek_parser, update_parser
from ..secret_input import ENV_PREFIX, resolve_secrets
from .base import MagicsBase, parser_of, show

__all__ = ["SourceCommands"]


class SourceCommands(MagicsBase):
    """Registering, changing, inspecting and removing sources."""

    def _add(self, words: list[str]) -> None:
        if not words:
            from ..widgets import add_form

            show(add_form(self.session))
            return
        source_id, source_type = self._peek_add(words)
        specs = self._specs(source_type)
        self._refuse_literal_secrets(words, specs, source=source_id)
        registry = self.session.registry
        if not _asks_for_help(words):
            if source_type is None:
                known = ", ".join(registry.source_types)
                raise UsageError(f"%datasource add: missing --type; known types: {known}")
            registry.connector_class(source_type)  # an unknown type, before its options
        args = add_parser(registry.source_types, source_type, specs).parse_words(words)
        if args.id is None:
            raise UsageError("%datasource add: missing the source id (%datasource add ID --type TYPE ...)")
        validate_source_id(args.id)
        if registry.exists(args.id):  # before any prompt for a secret
            raise DataSourceExists("a data source with this id is already registered", source=args.id)
        values = OptionValues.from_namespace(args)
        values.split_secrets(specs)
        secrets = resolve_secrets(specs, values, source=args.id)
        self.session.add(
            args.id,
            args.type,
            name=args.name or "",
            secrets=secrets,
            test=not args.no_test,
            secret_references=_environment_references(values, args.id),
            **values.options,
        )
        print(f"Added data source {args.id!r} ({args.type}): {_tested(args.no_test)}.")

    def _peek_add(self, words: Sequence[str]) -> tuple[str | None, str | None]:
        """The id and type of an add line, read before the type's options are known."""
        args, _ = peek_parser().parse_known_args(list(words))
        source_id = args.id if args.id and not args.id.startswith("-") else None
        return source_id, args.type

    def _update(self, words: list[str]) -> None:
        source_id = words[0] if words and not words[0].startswith("-") else None
        source_type = self._source_type(source_id) if source_id else None
        specs = self._specs(source_type)
        self._refuse_literal_secrets(words, specs, source=source_id)
        if source_id and source_type is None and not _asks_for_help(words):
            self.session.registry.get_config(source_id)  # an unknown id, before its options
        args = update_parser(source_type, specs).parse_words(words)
        values = OptionValues.from_namespace(args)
        values.split_secrets(specs)
        secrets: dict[str, Any] = dict(resolve_secrets(specs, values, source=args.id))
        options: dict[str, Any] = dict(values.options)
        secret_names = {spec.name for spec in specs if spec.secret}
        for name in args.unset:
            if name in secret_names:
                secrets[name] = ""
            else:
                options[name] = None
        if not (options or secrets or args.name is not None):
            raise UsageError(f"{args.id}: nothing to update; give the options to change (see --help)")
        self.session.update(
            args.id,
            name=args.name,
            secrets=secrets,
            test=not args.no_test,
            secret_references=_environment_references(values, args.id),
            **options,
        )
        print(f"Updated data source {args.id!r}: {_tested(args.no_test)}.")

    def _list(self, words: list[str]) -> pd.DataFrame | None:
        """The sources as a frame; with none yet, a line saying how to add one (not an empty frame)."""
        parser_of("list").parse_words(words)
        sources = self.session.sources()
        if sources.empty:
            print("no data sources yet; add one with %datasource add")
            return None
        return sources

    def _info(self, words: list[str]) -> pd.DataFrame:
        source_id = parser_of("info").parse_words(words).id
        registry = self.session.registry
        config = registry.get_config(source_id)
        rows = [
            ("id", config.id),
            ("type", config.type),
            ("name", config.display_name),
            ("status", registry.status(source_id)),
            ("last success", _when(registry.last_success(source_id))),
            ("created", _when(config.created_at)),
        ]
        rows += [(f"option {key}", str(value)) for key, value in sanitize(dict(config.options)).items()]
        rows += [(f"secret {key}", MASK) for key in sorted(config.secrets)]
        return pd.DataFrame(rows, columns=["field", "value"]).astype("string")

    def _test(self, words: list[str]) -> None:
        source_id = parser_of("test").parse_words(words).id
        print(f"{source_id}: OK: {self.session.test(source_id)}")

    def _remove(self, words: list[str]) -> None:
        source_id = parser_of("remove").parse_words(words).id
        self.session.remove(source_id)
        print(f"Removed data source {source_id!r}.")

    def _cache(self, words: list[str]) -> None:
        args = parser_of("cache").parse_words(words)
        dropped = self.session.registry.clear_cache(args.id)
        results = self.session.registry.results.clear(args.id)
        whose = f"of {args.id!r}" if args.id else "of every source"
        print(f"Cleared {dropped} cached item(s) and {results} cached result(s) {whose}.")

    def _browse(self, words: list[str]) -> None:
        args = parser_of("browse").parse_words(words)
        if args.id is not None:
            self.session.registry.get_config(args.id)  # reports an unknown id
        from ..widgets import browse_form

        show(browse_form(self.session, args.id))


def _environment_references(values: OptionValues, source_id: str) -> dict[str, str]:
    """``env:VAR`` for each secret given as ``--<name>-env VAR`` or ``env:VAR``, which ``save`` writes.

    A variable name a sources file cannot hold (it names something odd) gets none.
    """
    given = {name: text.removeprefix(ENV_PREFIX) for name, text in values.secret_values.items()}
    given.update(values.secret_env)
    references = {}
    for name, variable in given.items():
        try:
            reference = parse_reference(f"{ENV_PREFIX}{variable.strip()}", source=source_id, field=name)
        except DataSourceError:
            continue
        references[name] = str(reference)
    return references


def _when(moment: datetime | None) -> str:
    """A moment as ``%datasource list`` shows it (to the second, UTC), or ``never``."""
    return format_moment(moment)


def _asks_for_help(words: Sequence[str]) -> bool:
    return "-h" in words or "--help" in words


def _tested(skipped: bool) -> str:
    return "not tested (--no-test)" if skipped else "connected"
