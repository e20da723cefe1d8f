"""Secured Kafka settings: TLS/SASL variables and options, the replication factor, and a
SASL password that is never shown (the connections themselves are tested against a
real broker in tests/integration/test_kafka_security.py)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from flowmonkey.cli.common import CliError
from flowmonkey.cli.options import add_settings_options
from flowmonkey.cli.settings import settings_from_args
from flowmonkey.errors import LogError
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.kafka_security import KafkaSecurity, connection_hint
from flowmonkey.settings import Settings, SettingsError

PASSWORD = "pa55-w0rd-never-shown"
SASL = {
    "FLOWMONKEY_KAFKA_BOOTSTRAP": "k1:9093",
    "FLOWMONKEY_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "FLOWMONKEY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "FLOWMONKEY_KAFKA_SASL_USERNAME": "app",
    "FLOWMONKEY_KAFKA_SASL_PASSWORD": PASSWORD,
}


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A self-signed certificate, usable as a CA bundle and as a client certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a test certificate: install "
                    "it (Debian: apt-get install openssl)", pytrace=False)
    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=kafka.test", "-keyout", str(key),
         "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    return cert


def test_the_defaults_are_plaintext_and_the_brokers_replication_factor() -> None:
    settings = Settings.from_env({"FLOWMONKEY_KAFKA_BOOTSTRAP": "k:9092"})
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.replication_factor == -1
    log = settings.make_log()
    assert isinstance(log, KafkaLog)
    assert log.replication_factor == -1
    assert log.security == KafkaSecurity()
    assert log.security.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert KafkaLog("k:9092").replication_factor == -1


def test_every_security_variable_is_read_and_passed_to_the_log(ca_file: Path) -> None:
    key = ca_file.with_name("key.pem")
    settings = Settings.from_env({
        **SASL,
        "FLOWMONKEY_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",  # names are case-insensitive
        "FLOWMONKEY_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "FLOWMONKEY_KAFKA_SSL_CAFILE": str(ca_file),
        "FLOWMONKEY_KAFKA_SSL_CERTFILE": str(ca_file),
        "FLOWMONKEY_KAFKA_SSL_KEYFILE": str(key),
        "FLOWMONKEY_REPLICATION_FACTOR": " 3 ",
    })
    log = settings.make_log()
    assert isinstance(log, KafkaLog)
    assert log.replication_factor == 3
    assert log.security == KafkaSecurity(
        protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", username="app",
        password=PASSWORD, ssl_cafile=str(ca_file), ssl_certfile=str(ca_file),
        ssl_keyfile=str(key))
    kwargs = log.security.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"],
            kwargs["sasl_plain_password"]) == ("SCRAM-SHA-256", "app", PASSWORD)
    # the CA file was loaded into the context the clients verify the brokers with
    assert kwargs["ssl_context"].get_ca_certs()[0]["subject"] == (
        (("commonName", "kafka.test"),),)
    assert settings.describe_log() == "Kafka at k1:9093 (SASL_SSL, SCRAM-SHA-256 as user 'app')"


def test_sasl_defaults_to_the_plain_mechanism() -> None:
    security = Settings.from_env({**SASL, "FLOWMONKEY_KAFKA_SASL_MECHANISM": ""}
                                 ).kafka_security()
    assert security.client_kwargs()["sasl_mechanism"] == "PLAIN"
    assert "ssl_context" not in security.client_kwargs()


def test_ssl_without_a_ca_file_trusts_the_system_cas() -> None:
    kwargs = KafkaSecurity(protocol="SSL").client_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    assert kwargs["ssl_context"].check_hostname is True
    assert "sasl_plain_password" not in kwargs


@pytest.mark.parametrize(("env", "names", "says"), [
    ({"FLOWMONKEY_KAFKA_SECURITY_PROTOCOL": "TLS"}, ["FLOWMONKEY_KAFKA_SECURITY_PROTOCOL"],
     "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({**SASL, "FLOWMONKEY_KAFKA_SASL_MECHANISM": "GSSAPI"},
     ["FLOWMONKEY_KAFKA_SASL_MECHANISM"], "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"FLOWMONKEY_KAFKA_SASL_MECHANISM": "PLAIN"},
     ["FLOWMONKEY_KAFKA_SASL_MECHANISM", "FLOWMONKEY_KAFKA_SECURITY_PROTOCOL"],
     "does not authenticate"),
    ({**SASL, "FLOWMONKEY_KAFKA_SASL_USERNAME": ""}, ["FLOWMONKEY_KAFKA_SASL_USERNAME"],
     "set FLOWMONKEY_KAFKA_SASL_USERNAME"),
    ({**SASL, "FLOWMONKEY_KAFKA_SASL_PASSWORD": ""}, ["FLOWMONKEY_KAFKA_SASL_PASSWORD"],
     "set FLOWMONKEY_KAFKA_SASL_PASSWORD"),
    ({"FLOWMONKEY_KAFKA_SECURITY_PROTOCOL": "SSL",
      "FLOWMONKEY_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     ["FLOWMONKEY_KAFKA_SSL_CAFILE"], "not a file"),
    ({"FLOWMONKEY_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     ["FLOWMONKEY_KAFKA_SSL_CAFILE", "FLOWMONKEY_KAFKA_SECURITY_PROTOCOL"],
     "does not use TLS"),
    ({"FLOWMONKEY_KAFKA_SECURITY_PROTOCOL": "SSL",
      "FLOWMONKEY_KAFKA_SSL_KEYFILE": "/nonexistent/key.pem"},
     ["FLOWMONKEY_KAFKA_SSL_KEYFILE", "FLOWMONKEY_KAFKA_SSL_CERTFILE"], "set both"),
    ({"FLOWMONKEY_REPLICATION_FACTOR": "0"}, ["FLOWMONKEY_REPLICATION_FACTOR"],
     "-1 (the broker's default.replication.factor)"),
    ({"FLOWMONKEY_REPLICATION_FACTOR": "-2"}, ["FLOWMONKEY_REPLICATION_FACTOR"],
     "number of brokers"),
    ({"FLOWMONKEY_REPLICATION_FACTOR": "three"}, ["FLOWMONKEY_REPLICATION_FACTOR"],
     "whole number"),
])
def test_a_bad_security_setting_names_the_variables_and_the_fix(
    env: dict[str, str], names: list[str], says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    for name in names:
        assert name in message
    assert says in message
    assert PASSWORD not in message


def test_the_sasl_password_is_never_in_a_repr_or_an_error() -> None:
    settings = Settings.from_env(SASL)
    for text in (repr(settings), str(settings), settings.describe_log(),
                 repr(settings.kafka_security()), settings.kafka_security().describe()):
        assert PASSWORD not in text
    assert "kafka_sasl_password='***'" in repr(settings)
    # a password given where none is used is refused without being quoted
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FLOWMONKEY_KAFKA_SASL_PASSWORD": PASSWORD})
    assert PASSWORD not in str(caught.value)
    assert KafkaSecurity(password=None).scrub(PASSWORD) == PASSWORD
    assert settings.kafka_security().scrub(f"failed for {PASSWORD}!") == "failed for ***!"


def test_the_password_is_taken_as_is() -> None:
    settings = Settings.from_env({**SASL, "FLOWMONKEY_KAFKA_SASL_PASSWORD": " with spaces "})
    assert settings.kafka_sasl_password == " with spaces "


async def test_a_ca_file_that_is_not_pem_fails_start_before_any_connection(
    tmp_path: Path,
) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    log = KafkaLog("127.0.0.1:1", security=KafkaSecurity(
        protocol="SASL_SSL", username="app", password=PASSWORD, ssl_cafile=str(garbage)))
    with pytest.raises(LogError) as caught:
        await log.start()
    assert caught.value.code == "LOG_SECURITY_INVALID"
    assert "cannot load the TLS files" in str(caught.value)
    assert str(garbage) in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("factor", [0, -2, 40_000, True, 2.0])
def test_the_log_refuses_a_replication_factor_kafka_cannot_take(factor: object) -> None:
    with pytest.raises(ValueError, match="replication_factor must be -1"):
        KafkaLog("k:9092", replication_factor=factor)  # type: ignore[arg-type]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings_options(parser)
    return parser.parse_args(argv)


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SASL, "FLOWMONKEY_REPLICATION_FACTOR", "FLOWMONKEY_KAFKA_SSL_CAFILE",
                 "FLOWMONKEY_KAFKA_SSL_CERTFILE", "FLOWMONKEY_KAFKA_SSL_KEYFILE"):
        monkeypatch.delenv(name, raising=False)


def test_options_override_the_security_variables_and_the_password_comes_from_the_env(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path,
) -> None:
    _clear_env(monkeypatch)
    for name, value in SASL.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FLOWMONKEY_REPLICATION_FACTOR", "5")
    settings = settings_from_args(_args(
        "--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "PLAIN",
        "--kafka-sasl-username", "other", "--kafka-ssl-cafile", str(ca_file),
        "--replication-factor", "-1"))
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username, settings.kafka_ssl_cafile,
            settings.replication_factor) == ("SASL_SSL", "PLAIN", "other", ca_file, -1)
    assert settings.kafka_sasl_password == PASSWORD
    with pytest.raises(SystemExit):  # no option for the password
        _args("--kafka-sasl-password", "x")


@pytest.mark.parametrize(("argv", "says"), [
    (["--kafka-security-protocol", "SASL"], "--kafka-security-protocol must be one of"),
    (["--replication-factor", "0"], "--replication-factor must be -1"),
    (["--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-username", "app"],
     "set FLOWMONKEY_KAFKA_SASL_PASSWORD"),
])
def test_a_bad_security_option_is_reported_under_the_options_name(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], says: str
) -> None:
    _clear_env(monkeypatch)
    with pytest.raises(CliError) as caught:
        settings_from_args(_args(*argv))
    assert says in str(caught.value)


@pytest.mark.parametrize(("causes", "protocol", "expected"), [
    ("127.0.0.1:9: connecting failed: ConnectionResetError", "SASL_SSL",
     "does not speak TLS"),
    ("127.0.0.1:9: connecting failed: KafkaConnectionError: Connection at 127.0.0.1:9 "
     "closed", "SASL_PLAINTEXT", "expects TLS"),
    # nothing listening is not a mismatch, whatever the protocol
    ("127.0.0.1:9: connecting failed: KafkaConnectionError: Unable to connect: "
     "[Errno 111] Connect call failed", "PLAINTEXT", "Check that a broker is running"),
    ("127.0.0.1:9: connecting failed: ConnectionResetError", None,
     "Check that a broker is running"),
])
def test_the_hint_tells_a_protocol_mismatch_from_a_missing_broker(
    causes: str, protocol: str | None, expected: str,
) -> None:
    security = KafkaSecurity(protocol=protocol, username="u", password="p") \
        if protocol and protocol.startswith("SASL_") else \
        KafkaSecurity(protocol=protocol) if protocol else None
    assert expected in connection_hint(causes, security)
