"""CLI options for the runtime settings, and the errors that say what to do next.

Commands that talk to Kafka, Postgres or the embedded log add the options they need
with :func:`flowmonkey.cli.options.add_settings_options`; :func:`settings_from_args`
reads the environment
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

from flowmonkey.cli.common import EXIT_FAILED, CliError
from flowmonkey.cli.options import SETTINGS_OPTIONS
from flowmonkey.settings import (
    ENV_METRICS_PORT,
    ENV_REPLICATION_FACTOR,
    Settings,
    SettingsError,
    redact_dsn,
)

if TYPE_CHECKING:
    import asyncpg

    from flowmonkey.engine import Engine
    from flowmonkey.metrics import MetricsServer

DSN_EXAMPLE = "postgresql://flowmonkey:secret@localhost:5432/flowmonkey"
NO_DSN = CliError(
    "no PostgreSQL database given: set FLOWMONKEY_POSTGRES_DSN or pass --postgres-dsn",
    hint=f"e.g. export FLOWMONKEY_POSTGRES_DSN={DSN_EXAMPLE}")


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
    for dest, (flag, variable) in SETTINGS_OPTIONS.items():
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
