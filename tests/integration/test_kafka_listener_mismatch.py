"""A client whose security protocol is not the listener's is told so, naming both."""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey.errors import LogError
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.kafka_security import KafkaSecurity
from flowmonkey.testing.services_kafka import KafkaSaslEndpoint, KafkaSaslSslEndpoint

pytestmark = pytest.mark.integration


async def _start_error(bootstrap: str, security: KafkaSecurity) -> str:
    log = KafkaLog(bootstrap, client_id="mismatch", security=security)
    async with asyncio.timeout(60):
        with pytest.raises(LogError) as caught:
            await log.start()
    return str(caught.value)


async def test_a_tls_client_on_a_plaintext_listener(
    kafka_sasl: KafkaSaslEndpoint, kafka_sasl_ssl: KafkaSaslSslEndpoint,
) -> None:
    message = await _start_error(kafka_sasl.bootstrap, KafkaSecurity(
        protocol="SASL_SSL", sasl_mechanism="PLAIN", username=kafka_sasl.username,
        password=kafka_sasl.password, ssl_cafile=kafka_sasl_ssl.cafile))
    assert f"cannot connect to the Kafka cluster at {kafka_sasl.bootstrap} (SASL_SSL" in message
    assert "it probably does not speak TLS (a PLAINTEXT or SASL_PLAINTEXT port?), while " \
        "this client uses SASL_SSL" in message
    assert kafka_sasl.password not in message


async def test_a_plaintext_client_on_a_tls_listener(
    kafka_sasl_ssl: KafkaSaslSslEndpoint,
) -> None:
    message = await _start_error(kafka_sasl_ssl.bootstrap, KafkaSecurity(
        protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", username=kafka_sasl_ssl.username,
        password=kafka_sasl_ssl.password))
    assert "it probably expects TLS (an SSL or SASL_SSL port?), while this client uses " \
        "SASL_PLAINTEXT" in message
    assert kafka_sasl_ssl.password not in message
