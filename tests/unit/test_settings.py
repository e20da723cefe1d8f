"""Settings from the environment: defaults, parsing, clear errors, a DSN never shown."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flowmonkey.cli.common import CliError
from flowmonkey.cli.options import add_settings_options
from flowmonkey.cli.projector import DEFAULT_GROUP as CLI_DEFAULT_GROUP
from flowmonkey.cli.settings import scrub, settings_from_args
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.projector import DEFAULT_GROUP
from flowmonkey.settings import Settings, SettingsError, redact_dsn

DSN = "postgresql://fm:s3cret-pw@db.example:5432/flowmonkey"


def test_an_empty_environment_gives_the_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings(kafka_bootstrap=None, topic_prefix="flowmonkey",
                                postgres_dsn=None, data_dir=None, partitions=12,
                                exactly_once=True)
    assert settings.log_kind == "memory"


def test_every_variable_is_read() -> None:
    settings = Settings.from_env({
        "FLOWMONKEY_KAFKA_BOOTSTRAP": "k1:9092,k2:9093",
        "FLOWMONKEY_TOPIC_PREFIX": "shop.prod",
        "FLOWMONKEY_POSTGRES_DSN": DSN,
        "FLOWMONKEY_DATA_DIR": "/var/lib/fm",
        "FLOWMONKEY_PARTITIONS": " 24 ",
        "FLOWMONKEY_EXACTLY_ONCE": "off",
    })
    assert settings == Settings(kafka_bootstrap="k1:9092,k2:9093", topic_prefix="shop.prod",
                                postgres_dsn=DSN, data_dir=Path("/var/lib/fm"),
                                partitions=24, exactly_once=False)


def test_the_forms_settings_are_read() -> None:
    settings = Settings.from_env({
        "FLOWMONKEY_TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.5 ,fd00::/8",
        "FLOWMONKEY_PUBLIC_URL": "https://forms.example.com",
        "FLOWMONKEY_CAPTCHA_VERIFY_URLS": "Turnstile=http://127.0.0.1:8000/verify",
    })
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.5", "fd00::/8")
    assert settings.public_url == "https://forms.example.com"
    assert settings.captcha_verify_urls == (("turnstile", "http://127.0.0.1:8000/verify"),)


def test_empty_variables_count_as_unset() -> None:
    assert Settings.from_env({"FLOWMONKEY_KAFKA_BOOTSTRAP": "", "FLOWMONKEY_PARTITIONS": " ",
                              "FLOWMONKEY_TOPIC_PREFIX": ""}) == Settings()


@pytest.mark.parametrize("text", ["1", "true", "YES", "On"])
def test_exactly_once_accepts_the_usual_spellings_of_true(text: str) -> None:
    assert Settings.from_env({"FLOWMONKEY_EXACTLY_ONCE": text}).exactly_once is True


@pytest.mark.parametrize(("name", "value", "says"), [
    ("FLOWMONKEY_PARTITIONS", "twelve", "whole number from 1 to 10000"),
    ("FLOWMONKEY_PARTITIONS", "0", "whole number from 1 to 10000"),
    ("FLOWMONKEY_PARTITIONS", "2.5", "whole number from 1 to 10000"),
    ("FLOWMONKEY_EXACTLY_ONCE", "maybe", "true or false"),
    ("FLOWMONKEY_KAFKA_BOOTSTRAP", "localhost", "host:port"),
    ("FLOWMONKEY_KAFKA_BOOTSTRAP", "k1:9092,k2", "host:port"),
    ("FLOWMONKEY_KAFKA_BOOTSTRAP", "k1:99999", "host:port"),
    ("FLOWMONKEY_TOPIC_PREFIX", "has space", "Kafka topic names"),
    ("FLOWMONKEY_TOPIC_PREFIX", "x" * 238, "Kafka topic names"),
    ("FLOWMONKEY_POSTGRES_DSN", "mysql://u:pw@h/db", "postgresql://"),
    ("FLOWMONKEY_TRUSTED_PROXIES", "10.0.0.0/8,nope", "CIDRs"),
    ("FLOWMONKEY_TRUSTED_PROXIES", "10.0.0.0/40", "CIDRs"),
    ("FLOWMONKEY_PUBLIC_URL", "forms.example.com", "http(s) URL"),
    ("FLOWMONKEY_CAPTCHA_VERIFY_URLS", "recaptcha", "PROVIDER=URL"),
    ("FLOWMONKEY_CAPTCHA_VERIFY_URLS", "friendly=http://x/verify", "PROVIDER=URL"),
    ("FLOWMONKEY_CAPTCHA_VERIFY_URLS", "turnstile=file:///etc/passwd", "PROVIDER=URL"),
])
def test_a_bad_value_names_the_variable_and_what_it_accepts(
    name: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)
    assert says in str(caught.value)


def test_the_dsn_password_is_never_in_a_repr_or_an_error() -> None:
    settings = Settings.from_env({"FLOWMONKEY_POSTGRES_DSN": DSN})
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings)
    assert "s3cret-pw" not in settings.describe_projection()
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FLOWMONKEY_POSTGRES_DSN": "mysql://fm:s3cret-pw@h/db"})
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize(("dsn", "shown"), [
    (DSN, "postgresql://fm:***@db.example:5432/flowmonkey"),
    ("postgresql://fm@db/x", "postgresql://fm@db/x"),
    ("postgresql://db/x?sslmode=require&password=pw", "postgresql://db/x?sslmode=require&password=***"),
    ("postgresql://fm:p%40ss@db/x", "postgresql://fm:***@db/x"),
    ("host=db password=pw user=fm", "host=db password=*** user=fm"),
    ("host=db password='p w' user=fm", "host=db password=*** user=fm"),
])
def test_redact_dsn_hides_the_password_wherever_it_is(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_scrub_removes_a_quoted_password_from_driver_messages() -> None:
    assert scrub(f"could not use {DSN} (password s3cret-pw)", DSN) == (
        "could not use postgresql://fm:***@db.example:5432/flowmonkey (password ***)")


def test_replace_validates_and_ignores_none() -> None:
    settings = Settings().replace(partitions=3, kafka_bootstrap=None)
    assert (settings.partitions, settings.kafka_bootstrap) == (3, None)
    with pytest.raises(SettingsError):
        Settings().replace(partitions=0)


def test_make_log_picks_kafka_then_the_data_dir_then_memory(tmp_path: Path) -> None:
    kafka = Settings(kafka_bootstrap="k:9092", data_dir=tmp_path, partitions=6,
                     exactly_once=False).make_log()
    assert isinstance(kafka, KafkaLog)
    assert (kafka.bootstrap_servers, kafka.partitions, kafka.exactly_once) == ("k:9092", 6, False)
    durable = Settings(data_dir=tmp_path, partitions=5).make_log()
    assert isinstance(durable, EmbeddedLog)
    assert (durable.path, durable.default_partitions) == (tmp_path, 5)
    memory = Settings().make_log()
    assert isinstance(memory, EmbeddedLog)
    assert memory.path is None


def test_make_projection_is_postgres_with_a_dsn_and_memory_without() -> None:
    postgres = Settings(postgres_dsn=DSN).make_projection(schema="reports")
    assert isinstance(postgres, PostgresProjection)
    assert postgres.schema == "reports"
    assert isinstance(Settings().make_projection(), MemoryProjection)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings_options(parser)
    return parser.parse_args(argv)


def test_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWMONKEY_KAFKA_BOOTSTRAP", "env:9092")
    monkeypatch.setenv("FLOWMONKEY_PARTITIONS", "4")
    monkeypatch.setenv("FLOWMONKEY_TOPIC_PREFIX", "env")
    settings = settings_from_args(_args("--kafka-bootstrap", "cli:9092", "--partitions", "8"))
    assert (settings.kafka_bootstrap, settings.partitions, settings.topic_prefix) == (
        "cli:9092", 8, "env")


def test_a_bad_option_is_reported_under_the_options_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWMONKEY_PARTITIONS", raising=False)
    with pytest.raises(CliError) as caught:
        settings_from_args(_args("--partitions", "many"))
    assert str(caught.value).startswith("--partitions must be a whole number")
    assert caught.value.hint is not None
    assert "option" in caught.value.hint


def test_the_cli_and_the_projector_share_the_default_group() -> None:
    assert CLI_DEFAULT_GROUP == DEFAULT_GROUP
