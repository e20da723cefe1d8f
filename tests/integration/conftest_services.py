"""pytest plugin: real PostgreSQL 15 and Kafka 4.x for integration tests.

Load it from ``tests/conftest.py``::

    pytest_plugins = ["tests.integration.conftest_services"]

Session fixtures ``postgres_dsn`` / ``kafka_bootstrap`` start a server on first use
only (a run that asks for neither starts nothing) and stop it at session end. With
``FLOWMONKEY_TEST_POSTGRES_DSN`` / ``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP`` set, those
services are used instead (and only checked to answer). ``kafka_default_bootstrap``
is a second broker with Apache Kafka's default settings (auto topic creation on,
7-day retention; ``FLOWMONKEY_TEST_KAFKA_DEFAULT_BOOTSTRAP``), also started lazily.

A service that cannot be started or reached makes the tests that need it ERROR;
nothing is ever skipped for want of a service.

Per-test helpers:

* ``pg_schema`` -> ``(dsn, schema)``: a fresh schema, dropped (cascade) after the test.
* ``kafka_prefix`` -> ``str``: a unique topic-name prefix; topics named with it are
  deleted (best effort) after the test. ``kafka_default_prefix``: the same on the
  default-settings broker.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from flowmonkey.testing.services import (
    KafkaSaslEndpoint,
    KafkaSaslSslEndpoint,
    ServiceError,
    TestServices,
    delete_topics_with_prefix,
    run_async,
    services_from_env,
)

_session_services: list[TestServices] = []


def _unique_name(test_name: str, *, prefix: str, max_len: int, allowed: str) -> str:
    suffix = uuid.uuid4().hex[:8]
    room = max_len - len(prefix) - len(suffix) - 2
    body = re.sub(f"[^{allowed}]+", "_", test_name).strip("_")[:room]
    return f"{prefix}{body}_{suffix}"


@pytest.fixture(scope="session")
def flowmonkey_services() -> Iterator[TestServices]:
    """The session's services; each one starts only when a test first asks for it."""
    services = services_from_env()
    _session_services.append(services)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(scope="session")
def postgres_dsn(flowmonkey_services: TestServices) -> str:
    """DSN of a real PostgreSQL 15 server (superuser, database ``postgres``)."""
    try:
        return flowmonkey_services.postgres_dsn()
    except ServiceError as exc:
        problem = str(exc)
    pytest.fail(f"PostgreSQL for the tests is not available:\n{problem}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(flowmonkey_services: TestServices) -> str:
    """``host:port`` of a real Kafka 4.x broker (auto topic creation off)."""
    try:
        return flowmonkey_services.kafka_bootstrap()
    except ServiceError as exc:
        problem = str(exc)
    pytest.fail(f"Kafka for the tests is not available:\n{problem}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_default_bootstrap(flowmonkey_services: TestServices) -> str:
    """``host:port`` of a second real Kafka 4.x broker with Apache Kafka's default
    settings (auto topic creation on, 7-day retention): started only when a test asks
    for it, or ``FLOWMONKEY_TEST_KAFKA_DEFAULT_BOOTSTRAP``."""
    try:
        return flowmonkey_services.kafka_default_bootstrap()
    except ServiceError as exc:
        problem = str(exc)
    pytest.fail(f"the Kafka broker with default settings for the tests is not available:\n"
                f"{problem}", pytrace=False)


@pytest.fixture
def kafka_default_prefix(kafka_default_bootstrap: str,
                         request: pytest.FixtureRequest) -> Iterator[str]:
    """A topic-name prefix unique to this test on the default-settings broker; its
    topics are deleted (best effort) afterwards."""
    prefix = _unique_name(request.node.name, prefix="t_", max_len=80, allowed="A-Za-z0-9_") + "-"
    yield prefix
    try:
        run_async(lambda: delete_topics_with_prefix(kafka_default_bootstrap, prefix))
    except Exception as exc:  # cleanup only: never fail a test over it
        request.node.warn(pytest.PytestWarning(f"could not delete topics {prefix}*: {exc!r}"))


@pytest.fixture(scope="session")
def kafka_sasl(flowmonkey_services: TestServices) -> KafkaSaslEndpoint:
    """The broker's SASL_PLAINTEXT listener and a user it accepts (the started broker's,
    or an external one's from ``FLOWMONKEY_TEST_KAFKA_SASL_*``)."""
    try:
        return flowmonkey_services.kafka_sasl()
    except ServiceError as exc:
        problem = str(exc)
    pytest.fail(f"Kafka's SASL listener for the tests is not available:\n{problem}",
                pytrace=False)


@pytest.fixture(scope="session")
def kafka_sasl_ssl(flowmonkey_services: TestServices) -> KafkaSaslSslEndpoint:
    """The broker's SASL_SSL listener, a user it accepts and the CA file that signed its
    certificate (the started broker's, or an external one's from
    ``FLOWMONKEY_TEST_KAFKA_SASL_SSL_*``)."""
    try:
        return flowmonkey_services.kafka_sasl_ssl()
    except ServiceError as exc:
        problem = str(exc)
    pytest.fail(f"Kafka's SASL_SSL listener for the tests is not available:\n{problem}",
                pytrace=False)


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await conn.execute("set lock_timeout = '30s'")
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_schema(postgres_dsn: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(dsn, schema)``: a schema of its own for this test, dropped afterwards."""
    schema = _unique_name(request.node.name.lower(), prefix="t_", max_len=63, allowed="a-z0-9_")
    run_async(lambda: _execute(postgres_dsn, f'create schema "{schema}"'))
    yield postgres_dsn, schema
    run_async(lambda: _execute(postgres_dsn, f'drop schema if exists "{schema}" cascade'))


@pytest.fixture
def kafka_prefix(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A topic-name prefix unique to this test, e.g. ``t_test_foo_1a2b3c4d-``."""
    prefix = _unique_name(request.node.name, prefix="t_", max_len=80, allowed="A-Za-z0-9_") + "-"
    yield prefix
    try:
        run_async(lambda: delete_topics_with_prefix(kafka_bootstrap, prefix))
    except Exception as exc:  # cleanup only: never fail a test over it
        request.node.warn(pytest.PytestWarning(f"could not delete topics {prefix}*: {exc!r}"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for services in _session_services:
        if services.timings:
            terminalreporter.write_line(f"flowmonkey test services: {services.summary()}")
