"""Real PostgreSQL 15 and Apache Kafka 4.x servers for FlowMonkey's integration tests.

Nothing here is faked: :class:`PostgresServer` runs a throwaway cluster made with the
machine's ``initdb``/``pg_ctl``; :class:`KafkaBroker` runs a single-node KRaft broker
from the jars pinned in ``deploy/kafka/pom.xml`` (fetched once by Maven into a cache
folder). Both listen on free ports of 127.0.0.1 only and live in a temp dir that
``stop()`` deletes.

This module holds :class:`TestServices`, :func:`services_from_env` and the command line;
the servers live in :mod:`.services_postgres` and :mod:`.services_kafka` (jars, broker,
admin helpers), the shared helpers in :mod:`.services_common`. Their public names are
re-exported here.

Existing services win: with ``FLOWMONKEY_TEST_POSTGRES_DSN`` and/or
``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP`` set, :class:`TestServices` only checks that they
answer and starts nothing for them. A second broker, with Apache Kafka's default
settings (auto topic creation on, 7-day retention), starts only for the tests that ask
for it (``kafka_default_bootstrap()``), or is ``FLOWMONKEY_TEST_KAFKA_DEFAULT_BOOTSTRAP``.
The SASL tests use the started broker's SASL_PLAINTEXT listener; with an external broker they need
``FLOWMONKEY_TEST_KAFKA_SASL_BOOTSTRAP``, ``FLOWMONKEY_TEST_KAFKA_SASL_USERNAME``,
``FLOWMONKEY_TEST_KAFKA_SASL_PASSWORD`` (and ``FLOWMONKEY_TEST_KAFKA_SASL_MECHANISMS``,
the mechanisms that user has, default ``PLAIN``). The TLS tests likewise use its
SASL_SSL listener, or ``FLOWMONKEY_TEST_KAFKA_SASL_SSL_BOOTSTRAP``, ``_USERNAME``,
``_PASSWORD``, ``_CAFILE`` (the CA that signed the listener's certificate, one the
system does not trust) and ``_MECHANISMS``.

Command line (run from the repository root)::

    python -m flowmonkey.testing.services fetch-kafka   # pre-fetch the broker jars
    python -m flowmonkey.testing.services up            # start both, print env, wait

Environment knobs:

* ``FLOWMONKEY_CACHE_DIR``: cache root (default ``~/.cache/flowmonkey``); the jars go
  to ``<root>/kafka-<version>/libs``.
* ``FLOWMONKEY_KAFKA_POM``: another pom than ``deploy/kafka/pom.xml``.
* ``FLOWMONKEY_PG_BIN``: folder holding ``initdb``/``pg_ctl`` (default: PostgreSQL 15's
  Debian folder if present, else ``PATH``).
* ``JAVA_HOME``: the JVM to run Kafka with (default ``java`` on ``PATH``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from flowmonkey.testing.services_common import (
    ENV_KAFKA_BOOTSTRAP,
    ENV_KAFKA_DEFAULT_BOOTSTRAP,
    ENV_KAFKA_SASL_BOOTSTRAP,
    ENV_KAFKA_SASL_MECHANISMS,
    ENV_KAFKA_SASL_PASSWORD,
    ENV_KAFKA_SASL_SSL_BOOTSTRAP,
    ENV_KAFKA_SASL_SSL_CAFILE,
    ENV_KAFKA_SASL_SSL_MECHANISMS,
    ENV_KAFKA_SASL_SSL_PASSWORD,
    ENV_KAFKA_SASL_SSL_USERNAME,
    ENV_KAFKA_SASL_USERNAME,
    ENV_POSTGRES_DSN,
    ServiceError,
    log_status,
    run_async,
)
from flowmonkey.testing.services_kafka import (
    ENV_CACHE_DIR,
    KAFKA_VERSION,
    KafkaBroker,
    KafkaSaslEndpoint,
    KafkaSaslSslEndpoint,
    delete_topics_with_prefix,
    ensure_kafka_libs,
    kafka_cache_dir,
    kafka_probe,
    kafka_version,
)
from flowmonkey.testing.services_postgres import PostgresServer, pg_server_version

# Names re-exported from the services_* modules stay importable from here.
__all__ = [
    "ENV_CACHE_DIR",
    "ENV_KAFKA_BOOTSTRAP",
    "ENV_KAFKA_DEFAULT_BOOTSTRAP",
    "ENV_POSTGRES_DSN",
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaSaslEndpoint",
    "KafkaSaslSslEndpoint",
    "PostgresServer",
    "ServiceError",
    "TestServices",
    "delete_topics_with_prefix",
    "ensure_kafka_libs",
    "kafka_cache_dir",
    "run_async",
    "services_from_env",
]


class TestServices:
    """The services of one test session: from the environment, else started lazily.

    ``postgres_dsn()`` / ``kafka_bootstrap()`` start (or check) a service on first
    use only; ``close()`` stops what was started here.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.external_postgres_dsn = env.get(ENV_POSTGRES_DSN) or None
        self.external_kafka_bootstrap = env.get(ENV_KAFKA_BOOTSTRAP) or None
        self.external_kafka_default_bootstrap = env.get(ENV_KAFKA_DEFAULT_BOOTSTRAP) or None
        self._sasl_env = {name: env.get(name) or None for name in (
            ENV_KAFKA_SASL_BOOTSTRAP, ENV_KAFKA_SASL_USERNAME, ENV_KAFKA_SASL_PASSWORD,
            ENV_KAFKA_SASL_MECHANISMS, ENV_KAFKA_SASL_SSL_BOOTSTRAP, ENV_KAFKA_SASL_SSL_USERNAME,
            ENV_KAFKA_SASL_SSL_PASSWORD, ENV_KAFKA_SASL_SSL_MECHANISMS, ENV_KAFKA_SASL_SSL_CAFILE)}
        self._sasl: KafkaSaslEndpoint | None = None
        self._sasl_ssl: KafkaSaslSslEndpoint | None = None
        self.postgres: PostgresServer | None = None
        self.kafka: KafkaBroker | None = None
        self.kafka_default: KafkaBroker | None = None  # Kafka's default settings
        self._dsn: str | None = None
        self._bootstrap: str | None = None
        self._default_bootstrap: str | None = None
        self._lock = threading.Lock()
        self.timings: dict[str, float] = {}

    def postgres_dsn(self) -> str:
        with self._lock:
            if self._dsn is None:
                began = time.monotonic()
                if self.external_postgres_dsn:
                    dsn = self.external_postgres_dsn
                    try:
                        run_async(lambda: pg_server_version(dsn))
                    except Exception as exc:
                        raise ServiceError(
                            f"{ENV_POSTGRES_DSN}={dsn!r} is not reachable: {exc!r}"
                        ) from exc
                    self._dsn = dsn
                    self.timings["postgres check"] = time.monotonic() - began
                else:
                    self.postgres = PostgresServer().start()
                    self._dsn = self.postgres.dsn
                    self.timings["postgres start"] = time.monotonic() - began
            return self._dsn

    def kafka_bootstrap(self) -> str:
        with self._lock:
            if self._bootstrap is None:
                began = time.monotonic()
                if self.external_kafka_bootstrap:
                    bootstrap = self.external_kafka_bootstrap
                    try:
                        run_async(lambda: kafka_probe(bootstrap, create_topic=False))
                    except Exception as exc:
                        raise ServiceError(
                            f"{ENV_KAFKA_BOOTSTRAP}={bootstrap!r} is not reachable: {exc!r}"
                        ) from exc
                    self._bootstrap = bootstrap
                    self.timings["kafka check"] = time.monotonic() - began
                else:
                    self.kafka = KafkaBroker().start()
                    self._bootstrap = self.kafka.bootstrap
                    self.timings["kafka jars"] = self.kafka.fetched_in or 0.0
                    self.timings["kafka start"] = self.kafka.started_in or 0.0
            return self._bootstrap

    def kafka_default_bootstrap(self) -> str:
        """A broker with Apache Kafka's default settings: it auto-creates a topic that a
        metadata request names (``auto.create.topics.enable=true``) and keeps records 7
        days. Started on first use (its own JVM), or the one ``FLOWMONKEY_TEST_KAFKA_
        DEFAULT_BOOTSTRAP`` names, which must have those defaults too."""
        with self._lock:
            if self._default_bootstrap is None:
                began = time.monotonic()
                if self.external_kafka_default_bootstrap:
                    bootstrap = self.external_kafka_default_bootstrap
                    try:
                        run_async(lambda: kafka_probe(bootstrap, create_topic=False))
                    except Exception as exc:
                        raise ServiceError(
                            f"{ENV_KAFKA_DEFAULT_BOOTSTRAP}={bootstrap!r} is not reachable: "
                            f"{exc!r}") from exc
                    self._default_bootstrap = bootstrap
                    self.timings["kafka (defaults) check"] = time.monotonic() - began
                else:
                    # a smaller heap: the tests on it make a few topics only
                    self.kafka_default = KafkaBroker(kafka_defaults=True, heap="384m").start()
                    self._default_bootstrap = self.kafka_default.bootstrap
                    self.timings["kafka (defaults) start"] = self.kafka_default.started_in or 0.0
            return self._default_bootstrap

    def kafka_sasl(self) -> KafkaSaslEndpoint:
        """The SASL_PLAINTEXT listener and user of the session's broker: the started
        broker's, or the external one given by ``FLOWMONKEY_TEST_KAFKA_SASL_*``."""
        if self._sasl is not None:
            return self._sasl
        external = self._sasl_env[ENV_KAFKA_SASL_BOOTSTRAP]
        if external is None and self.external_kafka_bootstrap:
            raise ServiceError(
                f"{ENV_KAFKA_BOOTSTRAP} points at an external broker, so the SASL tests "
                f"need its SASL_PLAINTEXT listener too: set {ENV_KAFKA_SASL_BOOTSTRAP}="
                f"host:port, {ENV_KAFKA_SASL_USERNAME} and {ENV_KAFKA_SASL_PASSWORD} (and "
                f"{ENV_KAFKA_SASL_MECHANISMS}, the mechanisms that user has, default PLAIN; "
                "the tests use SCRAM-SHA-256 and SCRAM-SHA-512 too), or unset "
                f"{ENV_KAFKA_BOOTSTRAP} to start a broker that has one")
        if external is None:
            self.kafka_bootstrap()  # starts the broker, which has the listener
            assert self.kafka is not None
            self._sasl = self.kafka.sasl
            return self._sasl
        username = self._sasl_env[ENV_KAFKA_SASL_USERNAME]
        password = self._sasl_env[ENV_KAFKA_SASL_PASSWORD]
        if not username or not password:
            raise ServiceError(f"{ENV_KAFKA_SASL_BOOTSTRAP} is set: set "
                               f"{ENV_KAFKA_SASL_USERNAME} and {ENV_KAFKA_SASL_PASSWORD} too")
        endpoint = KafkaSaslEndpoint(external, username, password, _mechanisms(
            self._sasl_env[ENV_KAFKA_SASL_MECHANISMS]))
        _probe_external(endpoint, ENV_KAFKA_SASL_BOOTSTRAP, ENV_KAFKA_SASL_USERNAME)
        self._sasl = endpoint
        return endpoint

    def kafka_sasl_ssl(self) -> KafkaSaslSslEndpoint:
        """The SASL_SSL listener, user and CA file of the session's broker: the started
        broker's, or the external one given by ``FLOWMONKEY_TEST_KAFKA_SASL_SSL_*``."""
        if self._sasl_ssl is not None:
            return self._sasl_ssl
        env = self._sasl_env
        external = env[ENV_KAFKA_SASL_SSL_BOOTSTRAP]
        if external is None and self.external_kafka_bootstrap:
            raise ServiceError(
                f"{ENV_KAFKA_BOOTSTRAP} points at an external broker, so the TLS tests need "
                f"its SASL_SSL listener too: set {ENV_KAFKA_SASL_SSL_BOOTSTRAP}=host:port, "
                f"{ENV_KAFKA_SASL_SSL_USERNAME}, {ENV_KAFKA_SASL_SSL_PASSWORD} and "
                f"{ENV_KAFKA_SASL_SSL_CAFILE} (the CA file, PEM, that signed the listener's "
                "certificate: a private CA, as the tests check that the system's trusted CAs "
                f"do not accept it) (and {ENV_KAFKA_SASL_SSL_MECHANISMS}, the mechanisms that "
                "user has, default PLAIN), or unset "
                f"{ENV_KAFKA_BOOTSTRAP} to start a broker that has one")
        if external is None:
            self.kafka_bootstrap()  # starts the broker, which has the listener
            assert self.kafka is not None
            self._sasl_ssl = self.kafka.sasl_ssl
            return self._sasl_ssl
        username = env[ENV_KAFKA_SASL_SSL_USERNAME]
        password = env[ENV_KAFKA_SASL_SSL_PASSWORD]
        cafile = env[ENV_KAFKA_SASL_SSL_CAFILE]
        if not username or not password or not cafile:
            missing = [name for name in (ENV_KAFKA_SASL_SSL_USERNAME, ENV_KAFKA_SASL_SSL_PASSWORD,
                                         ENV_KAFKA_SASL_SSL_CAFILE) if not env[name]]
            raise ServiceError(f"{ENV_KAFKA_SASL_SSL_BOOTSTRAP} is set: set "
                               f"{' and '.join(missing)} too")
        if not Path(cafile).expanduser().is_file():
            raise ServiceError(f"{ENV_KAFKA_SASL_SSL_CAFILE} names {cafile!r}, which is not a "
                               "file: it must be the CA (PEM) that signed the listener's "
                               "certificate")
        endpoint = KafkaSaslSslEndpoint(
            external, username, password, _mechanisms(env[ENV_KAFKA_SASL_SSL_MECHANISMS]),
            cafile=str(Path(cafile).expanduser()))
        _probe_external(endpoint, ENV_KAFKA_SASL_SSL_BOOTSTRAP, ENV_KAFKA_SASL_SSL_USERNAME)
        self._sasl_ssl = endpoint
        return endpoint

    def close(self) -> None:
        with self._lock:
            for broker in (self.kafka, self.kafka_default):
                if broker is not None:
                    broker.stop()
            if self.postgres is not None:
                self.postgres.stop()
            self.kafka = self.kafka_default = self.postgres = None
            self._dsn = self._bootstrap = self._default_bootstrap = None
            self._sasl = None
            self._sasl_ssl = None

    def summary(self) -> str:
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())


def _mechanisms(text: str | None) -> tuple[str, ...]:
    """The comma-separated SASL mechanisms of an external user (default PLAIN)."""
    return tuple(m.strip().upper() for m in (text or "PLAIN").split(",") if m.strip())


def _probe_external(endpoint: KafkaSaslEndpoint, bootstrap_var: str, username_var: str) -> None:
    """Raise ServiceError (without the password) unless ``endpoint`` answers its user."""
    try:
        run_async(lambda: kafka_probe(endpoint.bootstrap, create_topic=False, sasl=endpoint))
    except Exception as exc:
        raise ServiceError(f"{bootstrap_var}={endpoint.bootstrap!r} cannot be used with "
                           f"{username_var}={endpoint.username!r}: "
                           f"{str(exc).replace(endpoint.password, '***')}") from None


def services_from_env(environ: dict[str, str] | None = None) -> TestServices:
    """Services from ``FLOWMONKEY_TEST_*`` env vars, else started on first use."""
    return TestServices(environ)


# ------------------------------------------------------------------------------ CLI


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowmonkey.testing.services",
        description="Real PostgreSQL / Kafka servers for FlowMonkey's integration tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch-kafka", help="only download the pinned Kafka jars into the cache")
    up = sub.add_parser("up", help="start the services, print their env vars, wait for Ctrl-C")
    up.add_argument("--no-kafka", action="store_true", help="do not start Kafka")
    up.add_argument("--no-postgres", action="store_true", help="do not start PostgreSQL")
    up.add_argument("--default-kafka", action="store_true",
                    help="also start a broker with Apache Kafka's default settings")
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch-kafka":
            began = time.monotonic()
            libs = ensure_kafka_libs(verbose=True)
            print(f"kafka {kafka_version()} jars: {libs} ({time.monotonic() - began:.1f}s)")
            return 0
        services = TestServices(environ={})
        with _sigterm_as_interrupt():
            try:
                if not args.no_postgres:
                    print(f"export {ENV_POSTGRES_DSN}={services.postgres_dsn()}", flush=True)
                if not args.no_kafka:
                    print(f"export {ENV_KAFKA_BOOTSTRAP}={services.kafka_bootstrap()}", flush=True)
                    sasl = services.kafka_sasl()
                    print(f"export {ENV_KAFKA_SASL_BOOTSTRAP}={sasl.bootstrap}\n"
                          f"export {ENV_KAFKA_SASL_USERNAME}={sasl.username}\n"
                          f"export {ENV_KAFKA_SASL_PASSWORD}={sasl.password}\n"
                          f"export {ENV_KAFKA_SASL_MECHANISMS}={','.join(sasl.mechanisms)}",
                          flush=True)
                    tls = services.kafka_sasl_ssl()
                    print(f"export {ENV_KAFKA_SASL_SSL_BOOTSTRAP}={tls.bootstrap}\n"
                          f"export {ENV_KAFKA_SASL_SSL_USERNAME}={tls.username}\n"
                          f"export {ENV_KAFKA_SASL_SSL_PASSWORD}={tls.password}\n"
                          f"export {ENV_KAFKA_SASL_SSL_MECHANISMS}={','.join(tls.mechanisms)}\n"
                          f"export {ENV_KAFKA_SASL_SSL_CAFILE}={tls.cafile}", flush=True)
                if args.default_kafka:
                    print(f"export {ENV_KAFKA_DEFAULT_BOOTSTRAP}="
                          f"{services.kafka_default_bootstrap()}", flush=True)
                log_status(f"up ({services.summary()}); Ctrl-C to stop")
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                log_status("stopping")
            finally:
                services.close()
        return 0
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
