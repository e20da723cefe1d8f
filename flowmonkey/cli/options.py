"""The option builders of the CLI, in one place: a command adds an option block with
its builder, so the same option has the same name, default and help in every command
that takes it (``tests/unit/test_cli_options.py`` checks it).

The command parsers themselves (:func:`add_command`, :func:`add_actions`) are here too.
Nothing here imports the engine, so ``flowmonkey --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TypeAlias

from flowmonkey.cli.common import EXIT_BAD_INPUT
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
    LOG_FORMATS,
)

if TYPE_CHECKING:
    Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# the options that override a setting: dest -> (flag, environment variable), read by
# cli.settings.settings_from_args
SETTINGS_OPTIONS = {
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

DEFAULT_PROGRESS_S = 5.0


# --------------------------------------------------------------------------- commands


def add_common_options(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """``--debug`` on the main parser and on every command (either position works)."""
    parser.add_argument(
        "--debug", action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="show Python tracebacks for errors")


def add_command(subparsers: Subparsers, name: str, *, help: str, description: str,
                epilog: str) -> argparse.ArgumentParser:
    """A command parser with the house style: description, examples epilog, --debug."""
    parser = subparsers.add_parser(
        name, help=help, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    return parser


def add_actions(parser: argparse.ArgumentParser, dest: str, choices: str) -> Subparsers:
    """The actions of a command group (``topics create``, ``wal list`` …); the group
    without one prints its help and says to choose one of ``choices`` (exit 2)."""

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        print(f"error: no action given; choose {choices} (above)", file=sys.stderr)
        return EXIT_BAD_INPUT

    parser.set_defaults(func=no_action)
    return parser.add_subparsers(dest=dest, metavar="ACTION")


# --------------------------------------------------------------------------- flows and input


APP_HELP = ("flows and handlers: an object or module with `flows` and `handlers` (a .py "
            "path works too); repeatable")
FLOWS_DIR_HELP = "register every .json/.yaml/.yml flow file in DIR; repeatable"


def add_app_options(parser: argparse.ArgumentParser, *, app_help: str = APP_HELP,
                    flows_dir_help: str = FLOWS_DIR_HELP) -> None:
    """``--app MODULE[:ATTR]`` and ``--flows-dir DIR``, both repeatable; read them with
    :func:`flowmonkey.cli.common.load_apps`."""
    parser.add_argument("--app", metavar="MODULE[:ATTR]", action="append", default=[],
                        help=app_help)
    parser.add_argument("--flows-dir", metavar="DIR", action="append", default=[],
                        help=flows_dir_help)


def add_input_options(parser: argparse.ArgumentParser, *, whose: str = "") -> None:
    """``--input JSON`` or ``--input-file PATH`` (not both): an execution's initial
    context, read with :func:`flowmonkey.cli.common.read_input`; ``whose`` starts the
    help (``"the --start execution's "``)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="JSON",
                        help=f"{whose}initial context, a JSON object")
    source.add_argument("--input-file", metavar="PATH",
                        help=f"{whose}initial context from a JSON or YAML file")


HANDLERS_HELP = ("extra handlers: a module's `handlers` list or the named attribute (a .py "
                 "path works too); repeatable")


def add_handlers_option(parser: argparse.ArgumentParser, *, help: str = HANDLERS_HELP
                        ) -> None:
    """``--handlers MODULE[:ATTR]``, repeatable; read each with
    :func:`flowmonkey.cli.common.load_handlers_spec`."""
    parser.add_argument("--handlers", metavar="MODULE[:ATTR]", action="append", default=[],
                        help=help)


def add_private_http_option(parser: argparse.ArgumentParser, *, when: str = "") -> None:
    """``--allow-private-http``; ``when`` says when it applies (``"without Kafka"``)."""
    parser.add_argument(
        "--allow-private-http", action="store_true",
        help=(f"{when}: let" if when else "let")
             + " the http handler call private and loopback addresses")


# --------------------------------------------------------------------------- services


def add_progress_option(parser: argparse.ArgumentParser, *, where: str = "",
                        when: str = "") -> None:
    """``--progress-every SECONDS`` (default 5); ``where`` the lines go (``"on
    stderr"``), ``when`` they are printed (``"with --verify-all"``)."""
    text = "seconds between progress lines" + (f" {where}" if where else "") + \
        f" (default {DEFAULT_PROGRESS_S:g})"
    parser.add_argument("--progress-every", metavar="SECONDS", type=float,
                        default=DEFAULT_PROGRESS_S,
                        help=f"{when}: {text}" if when else text)


def add_service_options(parser: argparse.ArgumentParser) -> None:
    """The options of a dedicated long-running process (``processor``, ``projector``):
    ``--no-tune-gc``, ``--log-format`` and the metrics options."""
    add_gc_option(parser)
    add_log_format_option(parser)
    add_metrics_options(parser)


def add_gc_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-tune-gc", dest="tune_gc", action="store_false",
        help="keep Python's default garbage-collector settings (by default this "
             "dedicated process raises its thresholds and freezes its start-up objects: "
             "see flowmonkey.runtime.gc_tuning)")


def add_log_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=None,
        help="text (default) or json: one JSON object per line, for a log collector, "
             f"progress lines included ({ENV_LOG_FORMAT})")


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


# --------------------------------------------------------------------------- connections


def add_schema_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schema", default=DEFAULT_SCHEMA,
        help=f"PostgreSQL schema of the projection tables (default {DEFAULT_SCHEMA})")


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
