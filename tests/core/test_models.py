"""Secrets, option specs and configs: what they hold, and that no repr shows a secret."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import timezone

import pytest

from deepanalyze_jupyter.errors import ConfigurationError
from deepanalyze_jupyter.models import DataSourceConfig, OptionSpec, Secret, validate_source_id
from deepanalyze_jupyter.redaction import MASK
from tests.core.conftest import PASSWORD

DSN = f"host=db.example user=ana password='{PASSWORD.replace(chr(39), chr(92) + chr(39))}' dbname=shop"


def shown(value: object) -> str:
    """Every way a value is commonly turned into text."""
    printf_style = "%s" % (value,)  # noqa: UP031 - logging formats this way
    return "\n".join([repr(value), str(value), f"{value}", f"{value!r}", printf_style, format(value, "")])


class TestSecret:
    def test_reveal_returns_the_value(self) -> None:
        assert Secret(PASSWORD).reveal() == PASSWORD

    def test_no_text_form_shows_the_value(self) -> None:
        text = shown(Secret(PASSWORD))
        assert PASSWORD not in text
        assert MASK in text
        assert f"{Secret(PASSWORD):>20}" == MASK

    def test_containers_of_secrets_do_not_show_them(self) -> None:
        assert PASSWORD not in repr({"password": Secret(PASSWORD)})
        assert PASSWORD not in str([Secret(PASSWORD)])

    def test_non_text_is_refused_without_echoing_it(self) -> None:
        with pytest.raises(TypeError, match="must be a str, not bytes") as caught:
            Secret(b"raw-bytes-secret")  # type: ignore[arg-type]
        assert "raw-bytes-secret" not in str(caught.value)

    def test_cannot_be_pickled(self) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(Secret(PASSWORD))

    def test_copies_are_the_same_secret(self) -> None:
        secret = Secret(PASSWORD)
        assert copy.copy(secret) is secret
        assert copy.deepcopy(secret) is secret

    def test_equality_and_truth(self) -> None:
        assert Secret("abc") == Secret("abc")
        assert Secret("abc") != Secret("abd")
        assert Secret("abc") != "abc"
        assert hash(Secret("abc")) == hash(Secret("abc"))
        assert not Secret("")
        assert Secret("x")

    def test_has_no_instance_dict(self) -> None:
        assert not hasattr(Secret(PASSWORD), "__dict__")


class TestOptionSpec:
    def test_coerces_text_to_its_kind(self) -> None:
        assert OptionSpec("port", int).coerce("5432") == 5432
        assert OptionSpec("ratio", float).coerce("0.5") == 0.5
        assert OptionSpec("name").coerce("x") == "x"
        assert OptionSpec("port", int).coerce(None) is None

    @pytest.mark.parametrize(
        ("text", "expected"), [("yes", True), ("On", True), ("0", False), ("FALSE", False)]
    )
    def test_parses_booleans(self, text: str, expected: bool) -> None:
        assert OptionSpec("ssl", bool).coerce(text) is expected

    def test_bad_values_name_the_option_and_the_source(self) -> None:
        with pytest.raises(
            ConfigurationError, match=r"^shop: option 'port' must be a whole number, got 'abc'$"
        ):
            OptionSpec("port", int).coerce("abc", source="shop")
        with pytest.raises(ConfigurationError, match="option 'ssl' must be true or false"):
            OptionSpec("ssl", bool).coerce("maybe", source="shop")

    def test_choices_are_enforced(self) -> None:
        spec = OptionSpec("auth", choices=("key", "sas"))
        assert spec.coerce("sas") == "sas"
        with pytest.raises(ConfigurationError, match="must be one of key, sas; got 'other'"):
            spec.coerce("other")

    def test_a_secret_value_is_never_echoed_in_an_error(self) -> None:
        spec = OptionSpec("pin", int, secret=True)
        with pytest.raises(ConfigurationError) as caught:
            spec.coerce("not-a-number-secret", source="shop")
        assert "not-a-number-secret" not in str(caught.value)
        assert MASK in str(caught.value)

    def test_applies_only_when_its_condition_holds(self) -> None:
        spec = OptionSpec("account_key", secret=True, when=("auth", ("account_key",)))
        assert spec.applies({"auth": "account_key"})
        assert not spec.applies({"auth": "sas"})
        assert OptionSpec("host").applies({})

    def test_title_comes_from_the_label_or_the_name(self) -> None:
        assert OptionSpec("account_name").title == "Account name"
        assert OptionSpec("sas", label="SAS token").title == "SAS token"


class TestSourceId:
    @pytest.mark.parametrize("source_id", ["shop", "_x", "sales-db.eu_1", "a" * 63])
    def test_good_ids(self, source_id: str) -> None:
        assert validate_source_id(source_id) == source_id

    @pytest.mark.parametrize("source_id", ["", "1db", "has space", "a" * 64, "semi;colon", "shop\n", None, 3])
    def test_bad_ids_are_refused(self, source_id: object) -> None:
        with pytest.raises(ConfigurationError, match="invalid source id"):
            validate_source_id(source_id)

    def test_a_config_validates_its_id(self) -> None:
        with pytest.raises(ConfigurationError, match="invalid source id"):
            DataSourceConfig(id="not valid", type="fake")


class TestDataSourceConfig:
    def make(self) -> DataSourceConfig:
        return DataSourceConfig(
            id="shop",
            type="postgresql",
            options={
                "host": "db.example",
                "dsn": DSN,
                "uri": "postgresql://ana:p%40ss%3Aw0rd-secret@db.example/shop",
                "nested": {
                    "Api_Key": "nested-api-key-value",
                    "list": [{"PASSWORD": "listed-password-value"}],
                },
            },
            secrets={"password": PASSWORD, "token": Secret("token-secret-value")},  # type: ignore[dict-item]
            metadata={"note": "see sig=metadata-sas-signature"},
        )

    def test_wraps_plain_secrets_and_keeps_values(self) -> None:
        config = self.make()
        assert all(isinstance(value, Secret) for value in config.secrets.values())
        assert config.secrets["password"].reveal() == PASSWORD
        assert config.name == "shop"
        assert config.display_name == "shop"
        assert config.created_at.tzinfo is timezone.utc

    @pytest.mark.parametrize(
        "secret",
        [
            PASSWORD,
            "token-secret-value",
            "p%40ss%3Aw0rd-secret",
            "nested-api-key-value",
            "listed-password-value",
            "metadata-sas-signature",
        ],
    )
    def test_no_text_form_shows_a_secret(self, secret: str) -> None:
        config = self.make()
        assert secret not in shown(config)
        assert secret not in repr(config.to_dict())
        assert secret not in repr(dataclasses.replace(config, name="other"))

    @pytest.mark.parametrize("secret", [PASSWORD, "token-secret-value"])
    def test_raw_views_keep_secret_fields_masked(self, secret: str) -> None:
        # Options are plain data (the connector moved secret options out); secret fields stay Secrets.
        config = self.make()
        assert secret not in repr(dataclasses.asdict(config))
        assert secret not in repr(vars(config))

    def test_repr_names_what_is_harmless(self) -> None:
        text = repr(self.make())
        assert "id='shop'" in text
        assert "type='postgresql'" in text
        assert "'host': 'db.example'" in text
        assert f"'password': '{MASK}'" in text

    def test_to_dict_reveals_only_when_asked(self) -> None:
        config = self.make()
        masked = config.to_dict()
        assert masked["secrets"] == {"password": MASK, "token": MASK}
        assert masked["options"]["nested"]["Api_Key"] == MASK
        revealed = config.to_dict(include_secrets=True)
        assert revealed["secrets"]["password"] == PASSWORD
        assert revealed["options"]["dsn"] == DSN

    def test_is_frozen_and_copies_its_mappings(self) -> None:
        options = {"host": "a"}
        config = DataSourceConfig(id="x", type="fake", options=options)
        options["host"] = "b"
        assert config.options["host"] == "a"
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.id = "y"  # type: ignore[misc]
