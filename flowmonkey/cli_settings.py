"""CLI options for the runtime settings, and the errors that say what to do next.

Commands that talk to Kafka, Postgres or the embedded log add the options they need
with :func:`add_settings_options`; :func:`settings_from_args` reads the environment
(:mod:`flowmonkey.settings`) and lets the options override it. Values from an option
are checked like the variables, and a bad one is reported under the option's name.
Secrets have no option (a command line is visible to other users of the machine):
the SASL password comes from ``FLOWMONKEY_KAFKA_SASL_PASSWORD`` only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flowmonkey.cli_common import EXIT_FAILED, CliError
from flowmonkey.settings import (
    DEFAULT_SCHEMA,
    ENV_DATA_DIR,
    ENV_KAFKA_BOOTSTRAP,
    ENV_KAFKA_SASL_MECHANISM,
    ENV_KAFKA_SASL_PASSWORD,
    ENV_KAFKA_SASL_USERNAME,
    ENV_KAFKA_SECURITY_PROTOCOL,
    ENV_KAFKA_SSL_CAFILE,
    ENV_KAFKA_SSL_CERTFILE,
    ENV_KAFKA_SSL_KEYFILE,
    ENV_LOG_FORMAT,
    ENV_METRICS_PORT,
    ENV_PARTITIONS,
    ENV_POSTGRES_DSN,
    ENV_REPLICATION_FACTOR,
    ENV_TOPIC_PREFIX,
    Settings,
    SettingsError,
    redact_dsn,
)

if TYPE_CHECKING:
    import asyncpg

    from flowmonkey.engine import Engine
    from flowmonkey.metrics import MetricsServer

# option dest -> (flag, environment variable)
_OPTIONS = {
    "kafka_bootstrap": ("--kafka-bootstrap", ENV_KAFKA_BOOTSTRAP),
    "topic_prefix": ("--topic-prefix", ENV_TOPIC_PREFIX),
    "replication_factor": ("--replication-factor", ENV_REPLICATION_FACTOR),
    "kafka_security_protocol": ("--kafka-security-protocol", ENV_KAFKA_SECURITY_PROTOCOL),
    "kafka_sasl_mechanism": ("--kafka-sasl-mechanism", ENV_KAFKA_SASL_MECHANISM),
    "kafka_sasl_username": ("--kafka-sasl-username", ENV_KAFKA_SASL_USERNAME),
    "kafka_ssl_cafile": ("--kafka-ssl-cafile", ENV_KAFKA_SSL_CAFILE),
    "kafka_ssl_certfile": ("--kafka-ssl-certfile", ENV_KAFKA_SSL_CERTFILE),
    "kafka_ssl_keyfile": ("--kafka-ssl-keyfile", ENV_KAFKA_SSL_KEYFILE),
    "partitions": ("--partitions", ENV_PARTITIONS),
    "postgres_dsn": ("--postgres-dsn", ENV_POSTGRES_DSN),
    "data_dir": ("--data-dir", ENV_DATA_DIR),
    "metrics_port": ("--metrics-port", ENV_METRICS_PORT),
    "log_format": ("--log-format", ENV_LOG_FORMAT),
}

DSN_EXAMPLE = "postgresql://flowmonkey:secret@localhost:5432/flowmonkey"
NO_DSN = CliError(
    "no PostgreSQL database given: set FLOWMONKEY_POSTGRES_DSN or pass --postgres-dsn",
    hint=f"e.g. export FLOWMONKEY_POSTGRES_DSN={DSN_EXAMPLE}")


def add_settings_options(parser: argparse.ArgumentParser, *, kafka: bool = True,
                         partitions: bool = True, postgres: bool = True,
                         data_dir: bool = True, embedded: bool = True,
                         creates_topics: bool = True) -> None:
    """The connection options, in a group of their own; each overrides its variable.

    ``embedded``: the command falls back to the embedded log without Kafka (else Kafka
    is required); ``creates_topics``: it creates missing topics (so it takes
    ``--replication-factor``)."""
    group = parser.add_argument_group(
        "connections", "each option overrides its environment variable")
    if kafka:
        group.add_argument(
            "--kafka-bootstrap", metavar="HOST:PORT[,…]",
            help=f"Kafka brokers (env {ENV_KAFKA_BOOTSTRAP}); "
                 + ("without it, the embedded log" if embedded else "required"))
        group.add_argument(
            "--topic-prefix", metavar="PREFIX",
            help=f"topic names are PREFIX.commands, PREFIX.events, … (env {ENV_TOPIC_PREFIX}, "
                 "default flowmonkey)")
    if kafka and creates_topics:
        group.add_argument(
            "--replication-factor", metavar="N",
            help=f"replicas of the topics this command creates (env {ENV_REPLICATION_FACTOR}, "
                 "default -1: the broker's default.replication.factor); at most the number "
                 "of brokers")
    if kafka:
        group.add_argument(
            "--kafka-security-protocol", metavar="PROTOCOL",
            help=f"PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (env "
                 f"{ENV_KAFKA_SECURITY_PROTOCOL}, default PLAINTEXT)")
        group.add_argument(
            "--kafka-sasl-mechanism", metavar="MECHANISM",
            help=f"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (env {ENV_KAFKA_SASL_MECHANISM}, "
                 "default PLAIN)")
        group.add_argument(
            "--kafka-sasl-username", metavar="USER",
            help=f"the SASL user (env {ENV_KAFKA_SASL_USERNAME}); its password is read from "
                 f"the environment only, {ENV_KAFKA_SASL_PASSWORD} (no option: a command "
                 "line is visible to other users of the machine)")
        group.add_argument(
            "--kafka-ssl-cafile", metavar="FILE",
            help=f"PEM bundle of the CA that signed the brokers' certificates (env "
                 f"{ENV_KAFKA_SSL_CAFILE}; default: the system's CAs)")
        group.add_argument(
            "--kafka-ssl-certfile", metavar="FILE",
            help=f"client certificate (PEM) for mutual TLS (env {ENV_KAFKA_SSL_CERTFILE})")
        group.add_argument(
            "--kafka-ssl-keyfile", metavar="FILE",
            help=f"the client certificate's unencrypted key (PEM) (env "
                 f"{ENV_KAFKA_SSL_KEYFILE})")
    if partitions:
        group.add_argument(
            "--partitions", metavar="N",
            help=f"partitions of the commands and events topics (env {ENV_PARTITIONS}, "
                 "default 12)")
    if data_dir:
        group.add_argument(
            "--data-dir", metavar="DIR",
            help=f"directory of the durable embedded log, used without Kafka (env "
                 f"{ENV_DATA_DIR})")
    if postgres:
        group.add_argument(
            "--postgres-dsn", metavar="DSN",
            help=f"PostgreSQL URL (env {ENV_POSTGRES_DSN}), e.g. postgresql://user:password@"
                 "host:5432/db. Prefer the variable: a password on the command line is "
                 "visible to other users of the machine")


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` / ``--metrics-host``: serve Prometheus metrics on ``/metrics``."""
    group = parser.add_argument_group("metrics")
    group.add_argument(
        "--metrics-port", metavar="PORT",
        help=f"serve Prometheus metrics on http://HOST:PORT/metrics (env "
             f"{ENV_METRICS_PORT}; default: not served)")
    group.add_argument(
        "--metrics-host", metavar="HOST", default="127.0.0.1",
        help="address the metrics are served on (default 127.0.0.1; 0.0.0.0 for every "
             "interface: the metrics hold no tenant data, but anyone reaching the port "
             "reads them)")


@contextlib.contextmanager
def serving_metrics(args: argparse.Namespace, settings: Settings,
                    say: Callable[[str], None]) -> Iterator[None]:
    """Serve the process's metrics, when a port is set, for the duration of the block."""
    server = _start_metrics_server(args, settings, say)
    try:
        yield
    finally:
        if server is not None:
            server.close()


def _start_metrics_server(args: argparse.Namespace, settings: Settings,
                          say: Callable[[str], None]) -> MetricsServer | None:
    if settings.metrics_port is None:
        return None
    from flowmonkey.metrics import default_metrics, serve_metrics

    host = args.metrics_host
    try:
        server = serve_metrics(default_metrics(), settings.metrics_port, host)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {host}:{settings.metrics_port}: "
                       f"{exc.strerror or exc}",
                       hint="pick a free port with --metrics-port or "
                            f"{ENV_METRICS_PORT}") from None
    say(f"metrics on http://{host}:{server.port}/metrics")
    return server


def add_schema_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema", default=DEFAULT_SCHEMA,
        help=f"PostgreSQL schema of the projection tables (default {DEFAULT_SCHEMA})")


def check_schema(schema: str) -> None:
    from flowmonkey.pg.schema import checked_schema

    try:
        checked_schema(schema)
    except ValueError as exc:
        raise CliError(f"--schema: {exc}") from None


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's options on top."""
    env = dict(os.environ)
    given: dict[str, str] = {}
    for dest, (flag, variable) in _OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[variable] = str(value)
            given[variable] = flag
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        message = str(exc)
        for variable, flag in given.items():
            message = message.replace(variable, flag)
        hint = "fix the option, or leave it out to use the environment's setting" \
            if any(flag in message for flag in given.values()) else \
            "fix the environment variable, or unset it to use the default"
        raise CliError(message, hint=hint) from None


def require_dsn(settings: Settings) -> str:
    if not settings.postgres_dsn:
        raise NO_DSN
    return settings.postgres_dsn


def scrub(text: str, dsn: str | None) -> str:
    """``text`` without the DSN's password, should a driver message ever quote it."""
    if not dsn:
        return text
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    text = text.replace(dsn, redact_dsn(dsn))
    return text.replace(password, "***") if password else text


def postgres_unreachable(exc: BaseException, dsn: str) -> CliError:
    """The error for a database that cannot be used, with what to check."""
    detail = scrub(f"{type(exc).__name__}: {exc}", dsn)
    return CliError(
        f"cannot use PostgreSQL at {redact_dsn(dsn)}: {detail}", exit_code=EXIT_FAILED,
        hint="check that the server is running and accepts these credentials, and that "
             "FLOWMONKEY_POSTGRES_DSN (or --postgres-dsn) names it")


def log_unreachable(exc: BaseException, settings: Settings) -> CliError:
    details = getattr(exc, "details", {})
    if getattr(exc, "code", None) == "LOG_TOPIC_SETTINGS":  # the message gives the fix
        return CliError(f"{exc}", exit_code=EXIT_FAILED,
                        hint="`flowmonkey topics check` lists every topic's settings")
    if getattr(exc, "code", None) in ("LOG_DAMAGED", "LOG_OFFSETS_PAST_END"):
        # the message names the files, offsets and executions, and the repair command
        return CliError(f"{exc}", exit_code=EXIT_FAILED,
                        hint=f"see `flowmonkey log check --data-dir {settings.data_dir}`, "
                             "then `flowmonkey log repair` with the same --data-dir")
    if isinstance(details, dict) and "topic" in details and "partition" not in details:
        return CliError(f"{exc}", exit_code=EXIT_FAILED,
                        hint="create the topics with `flowmonkey topics create` and the "
                             "same settings (topic prefix, partitions)")
    if getattr(exc, "code", None) == "LOG_REPLICATION_FACTOR":
        return CliError(f"{exc}", exit_code=EXIT_FAILED,
                        hint=f"set {ENV_REPLICATION_FACTOR} (or --replication-factor) to at "
                             "most the number of brokers")
    hint = ("check that the brokers are running and that FLOWMONKEY_KAFKA_BOOTSTRAP (or "
            "--kafka-bootstrap) names them, and the security settings (FLOWMONKEY_KAFKA_"
            "SECURITY_PROTOCOL, _SASL_*, _SSL_*) if the cluster is secured"
            if settings.kafka_bootstrap else
            "check the data directory (FLOWMONKEY_DATA_DIR or --data-dir); only one "
            "process can open it at a time")
    return CliError(f"cannot use {settings.describe_log()}: {exc}", exit_code=EXIT_FAILED,
                    hint=hint)


async def connect_postgres(dsn: str, timeout_s: float = 15.0) -> asyncpg.Connection[
        asyncpg.Record]:
    import asyncpg

    try:
        return await asyncpg.connect(dsn, timeout=timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise postgres_unreachable(exc, dsn) from None


async def start_engine(engine: Engine, settings: Settings) -> None:
    """Start a service command's engine; if Kafka or PostgreSQL cannot be used, stop
    what did start and raise the error that says what to check (exit code 1)."""
    import asyncpg

    from flowmonkey.errors import FlowMonkeyError

    try:
        await engine.start()
    except FlowMonkeyError as exc:
        with contextlib.suppress(Exception):
            await engine.stop()
        raise log_unreachable(exc, settings) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        with contextlib.suppress(Exception):
            await engine.stop()
        raise postgres_unreachable(exc, settings.postgres_dsn or "") from None
