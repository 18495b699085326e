"""Secrets in magic lines: literals refused, environment variables and prompts accepted."""

from __future__ import annotations

import pytest
from IPython.core.error import StdinNotImplementedError, UsageError

from deepanalyze_jupyter.models import OptionSpec
from deepanalyze_jupyter.notebook.magic_args import OptionValues
from deepanalyze_jupyter.notebook.secret_input import (
    LiteralSecretRefused,
    find_literal_secrets,
    resolve_secrets,
)
from deepanalyze_jupyter.redaction import MASK

SPECS = (
    OptionSpec("host", str, "server name"),
    OptionSpec("dsn", str, "connection string"),
    OptionSpec("passphrase", str, "a secret whose name does not sound like one", secret=True),
    OptionSpec("password", str, "login password", secret=True),
)
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq=="


@pytest.mark.parametrize(
    ("words", "secret"),
    [
        (["--password", "hunter2"], "hunter2"),
        (["--password=hunter2"], "hunter2"),
        (["--passphrase", "hunter2"], "hunter2"),
        (["--sas-token", "sv=2024&sig=abc"], "sv=2024&sig=abc"),
        (["--api-key", "hunter2"], "hunter2"),
    ],
)
def test_a_literal_secret_is_found(words: list[str], secret: str) -> None:
    found = find_literal_secrets(["add", "x", *words], SPECS)
    assert [(item.value, item.embedded) for item in found] == [(secret, False)]
    assert found[0].masked == MASK


@pytest.mark.parametrize(
    ("words", "flag"),
    [
        (["--dsn", "postgresql://analyst:hunter2@db/sales"], "--dsn"),
        (["--dsn=host=db password=hunter2"], "--dsn"),
        (["--host", f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={ACCOUNT_KEY}"], "--host"),
        (["https://acct.blob.core.windows.net/raw?sv=2024&sig=abcdef"], "the line"),
    ],
)
def test_a_secret_inside_another_value_is_found(words: list[str], flag: str) -> None:
    found = find_literal_secrets(["ls", "x", *words], SPECS)
    assert len(found) == 1
    assert found[0].embedded
    assert found[0].flag == flag
    assert "hunter2" not in found[0].masked
    assert ACCOUNT_KEY not in found[0].masked


@pytest.mark.parametrize(
    "words",
    [
        ["--password", "env:PGPASSWORD"],
        ["--password-env", "PGPASSWORD"],
        ["--prompt", "password"],
        ["--host", "db.internal", "--dsn", "postgresql://analyst@db/sales"],
        ["--password"],
    ],
)
def test_references_to_secrets_are_fine(words: list[str]) -> None:
    assert find_literal_secrets(["add", "x", *words], SPECS) == []


def test_a_plain_option_that_sounds_secret_is_not_refused() -> None:
    specs = (OptionSpec("token_url", str, "where tokens come from"),)
    assert find_literal_secrets(["--token-url", "https://login.example/token"], specs) == []


def test_the_refusal_says_what_to_do_and_never_the_secret() -> None:
    found = find_literal_secrets(["--password", "hunter2"], SPECS)
    message = str(LiteralSecretRefused(found, source="warehouse", secret_names=["password"]))
    assert message.startswith("warehouse: refused the literal secret given to --password")
    assert "--password-env VAR" in message
    assert "--prompt password" in message
    assert "hunter2" not in message
    assert "\n" not in message


def test_secrets_come_from_the_environment() -> None:
    values = OptionValues(secret_values={"password": "env:PW"}, secret_env={"passphrase": "PHRASE"})
    secrets = resolve_secrets(SPECS, values, source="w", environ={"PW": "pw-value", "PHRASE": "phrase-value"})
    assert {name: secret.reveal() for name, secret in secrets.items()} == {
        "password": "pw-value",
        "passphrase": "phrase-value",
    }


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({}, "that environment variable is not set in the kernel's environment"),
        ({"hunter2-PW": ""}, "is empty"),
    ],
)
@pytest.mark.parametrize(
    "values",
    [
        OptionValues(secret_env={"password": "hunter2-PW"}),
        OptionValues(secret_values={"password": "env:hunter2-PW"}),
    ],
)
def test_a_missing_environment_variable_is_refused_without_its_name(
    environ: dict[str, str], problem: str, values: OptionValues
) -> None:
    with pytest.raises(LiteralSecretRefused) as refused:
        resolve_secrets(SPECS, values, source="w", environ=environ)
    message = str(refused.value)
    assert message.startswith("w: refused the value of --password")
    assert problem in message
    assert "hunter2" not in message
    assert [found.value for found in refused.value.found] == ["hunter2-PW"]


def test_a_prompt_asks_with_the_field_and_source() -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "typed-secret"

    secrets = resolve_secrets(SPECS, OptionValues(prompts=["password"]), source="w", ask=ask)
    assert secrets["password"].reveal() == "typed-secret"
    assert asked == ["Password for w: "]


def test_an_empty_answer_is_an_error() -> None:
    with pytest.raises(UsageError, match="no password was entered"):
        resolve_secrets(SPECS, OptionValues(prompts=["password"]), source="w", ask=lambda prompt: "")


def test_a_front_end_without_input_gets_a_clear_error() -> None:
    def ask(prompt: str) -> str:
        raise StdinNotImplementedError(
            "getpass was called, but this frontend does not support input requests."
        )

    with pytest.raises(UsageError, match=r"cannot prompt for password here.*--password-env VAR"):
        resolve_secrets(SPECS, OptionValues(prompts=["password"]), source="w", ask=ask)


def test_a_secret_given_twice_is_an_error() -> None:
    values = OptionValues(secret_env={"password": "PW"}, prompts=["password"])
    with pytest.raises(UsageError, match="--password was given more than once"):
        resolve_secrets(SPECS, values, source="w", environ={"PW": "x"}, ask=lambda prompt: "y")


@pytest.mark.parametrize(
    "words",
    [
        ["--dsn", "postgresql://u@h/db?%70assword=hunter2"],
        ["--dsn", "postgresql://u@h/db?sslpassword=hunter2"],
        ["--dsn", "host=h password = hunter2"],
        ["--dsn", "host=h password='hunter2 x'"],
        ["https://acct.blob.core.windows.net/c?sv=1&%73ig=hunter2"],
        ["--host", "sv=1&SIG=hunter2"],
    ],
)
def test_a_secret_is_found_as_the_library_reads_the_value(words: list[str]) -> None:
    found = find_literal_secrets(["add", "x", *words], SPECS)
    assert len(found) == 1
    assert found[0].embedded
    assert "hunter2" not in found[0].masked


@pytest.mark.parametrize(
    ("words", "why"),
    [
        (["--password-env", "hunter 2"], "not the name of an environment variable"),
        (["--password-env=hunter2!"], "not the name of an environment variable"),
        (["--password", "env:hunter2 x"], "not the name of an environment variable"),
        (["--prompt", "hunter2"], "not the name of a secret option (passphrase, password)"),
        (["--unset", "hunter2"], "not the name of an option of this source type"),
    ],
)
def test_a_value_where_a_name_is_expected_is_refused_unrepeated(words: list[str], why: str) -> None:
    found = find_literal_secrets(["update", "x", *words], SPECS)
    assert len(found) == 1
    assert why in found[0].not_a_name
    assert found[0].masked == MASK
    message = str(LiteralSecretRefused(found, source="x", secret_names=["password"]))
    assert "hunter2" not in message
    assert why in message


@pytest.mark.parametrize(
    "words",
    [["--prompt", "password"], ["--unset", "host"], ["--unset=password"], ["--password-env", "PG_PASS_1"]],
)
def test_names_where_names_are_expected_are_fine(words: list[str]) -> None:
    assert find_literal_secrets(["update", "x", *words], SPECS) == []
