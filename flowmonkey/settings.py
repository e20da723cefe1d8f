"""Runtime settings from the environment, shared by the CLI and the services.

* ``FLOWMONKEY_KAFKA_BOOTSTRAP``: Kafka brokers, ``host:port[,host:port…]``; unset: the
  embedded log.
* ``FLOWMONKEY_TOPIC_PREFIX``: prefix of the topic names (``flowmonkey``).
* ``FLOWMONKEY_POSTGRES_DSN``: ``postgresql://user:password@host:port/database``; unset:
  the memory projection.
* ``FLOWMONKEY_DATA_DIR``: directory of the durable embedded log; unset: in memory.
* ``FLOWMONKEY_PARTITIONS``: partitions of the commands and events topics (``12``).
* ``FLOWMONKEY_EXACTLY_ONCE``: Kafka transactions (``true``; ``false`` for brokers
  without them: at least once plus deduplication).
* ``FLOWMONKEY_REPLICATION_FACTOR``: replicas of the topics FlowMonkey creates (``-1``:
  the broker's ``default.replication.factor``).
* ``FLOWMONKEY_METRICS_PORT``: the port ``flowmonkey processor`` and ``flowmonkey
  projector`` serve Prometheus metrics on (``/metrics``); unset: not served.

Secured Kafka clusters (:class:`~flowmonkey.log.kafka_security.KafkaSecurity`):

* ``FLOWMONKEY_KAFKA_SECURITY_PROTOCOL``: ``PLAINTEXT`` (default), ``SSL``,
  ``SASL_PLAINTEXT`` or ``SASL_SSL``.
* ``FLOWMONKEY_KAFKA_SASL_MECHANISM``: ``PLAIN`` (default for SASL), ``SCRAM-SHA-256``
  or ``SCRAM-SHA-512``; ``FLOWMONKEY_KAFKA_SASL_USERNAME`` and
  ``FLOWMONKEY_KAFKA_SASL_PASSWORD``, both required for SASL (the password is taken
  as is, spaces included, and has no command-line option).
* ``FLOWMONKEY_KAFKA_SSL_CAFILE``: the CA bundle (PEM) that signed the brokers'
  certificates (default: the system's CAs); ``FLOWMONKEY_KAFKA_SSL_CERTFILE`` and
  ``FLOWMONKEY_KAFKA_SSL_KEYFILE``: a client certificate and key (mutual TLS).

The HTTP API (``flowmonkey api``) reads its keys with
:func:`flowmonkey.api.auth.api_keys_from_env`, not with :class:`Settings`, so that no
other command fails over a setting it never uses (this module keeps only the name):

* ``FLOWMONKEY_API_KEYS``: ``KEY=TENANT[,KEY=TENANT…]``; a tenant of ``*`` makes an
  admin key (every tenant; it may act for one named by an ``X-Tenant-Id`` header).

Forms (:mod:`flowmonkey.forms`, the public ``POST /v1/forms/{id}/submissions``):

* ``FLOWMONKEY_TRUSTED_PROXIES``: CIDRs (or addresses) of the reverse proxies in front
  of ``flowmonkey api``, comma-separated; a request from one of them is taken to come
  from the address its ``X-Forwarded-For`` names (read from the right, up to the first
  address that is no trusted proxy). Unset: the connection's address, always.
* ``FLOWMONKEY_PUBLIC_URL``: the API's address as its users reach it
  (``https://forms.example.com``), put before the submission URLs of ``form-submit``
  steps; unset: those URLs are paths (``/v1/forms/...``).
* ``FLOWMONKEY_CAPTCHA_VERIFY_URLS``: ``PROVIDER=URL[,PROVIDER=URL…]`` replacing the
  verify endpoint of ``recaptcha``, ``hcaptcha`` or ``turnstile`` (a proxy, or a fake
  in tests).

Its inbound email endpoint (``POST /v1/inbound/email``, replies to ``email-reply``
steps' mails) reads :class:`flowmonkey.api.inbound_email.InboundEmailSettings`:

* ``FLOWMONKEY_INBOUND_EMAIL_SECRET``: the *name* of the vault secret the inbound mail
  service signs its posts with (HMAC-SHA256); unset: the endpoint is off (404).
* ``FLOWMONKEY_INBOUND_EMAIL_SIGNATURE``: ``github`` (the default:
  ``X-Hub-Signature-256: sha256=<hex>``) or ``stripe`` (``Stripe-Signature:
  t=<seconds>,v1=<hex>``, refused 5 minutes away from now).
* ``FLOWMONKEY_INBOUND_EMAIL_MAX_BYTES``: the largest post (default 1 MiB, at most
  10 MiB).

The commands that run handlers (``processor``, ``api``, ``dev``, ``run``) give them a
vault (:func:`vault_from_env`) reading secrets from the environment:

* ``FLOWMONKEY_SECRET_PREFIX``: the prefix of the variables secrets are read from
  (``FLOWMONKEY_SECRET_``): the secret ``payments/api-key`` (as an ``http`` header
  ``{"$vault": "payments/api-key"}`` names it) is ``FLOWMONKEY_SECRET_PAYMENTS_API_KEY``.

An empty variable counts as unset. A bad value raises :class:`SettingsError` naming
the variable and what it accepts. The DSN's and the SASL passwords never appear in a
message or a ``repr``: use :func:`redact_dsn` for anything printed or logged; nor do
API keys (an error names the entry by its position, never by its value).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flowmonkey.errors import FlowMonkeyError

if TYPE_CHECKING:
    from flowmonkey.handlers.base import EnvVaultProvider
    from flowmonkey.log.base import Log
    from flowmonkey.log.kafka_security import KafkaSecurity
    from flowmonkey.projections.base import Projection

ENV_KAFKA_BOOTSTRAP = "FLOWMONKEY_KAFKA_BOOTSTRAP"
ENV_TOPIC_PREFIX = "FLOWMONKEY_TOPIC_PREFIX"
ENV_POSTGRES_DSN = "FLOWMONKEY_POSTGRES_DSN"
ENV_DATA_DIR = "FLOWMONKEY_DATA_DIR"
ENV_PARTITIONS = "FLOWMONKEY_PARTITIONS"
ENV_EXACTLY_ONCE = "FLOWMONKEY_EXACTLY_ONCE"
ENV_REPLICATION_FACTOR = "FLOWMONKEY_REPLICATION_FACTOR"
ENV_KAFKA_SECURITY_PROTOCOL = "FLOWMONKEY_KAFKA_SECURITY_PROTOCOL"
ENV_KAFKA_SASL_MECHANISM = "FLOWMONKEY_KAFKA_SASL_MECHANISM"
ENV_KAFKA_SASL_USERNAME = "FLOWMONKEY_KAFKA_SASL_USERNAME"
ENV_KAFKA_SASL_PASSWORD = "FLOWMONKEY_KAFKA_SASL_PASSWORD"
ENV_KAFKA_SSL_CAFILE = "FLOWMONKEY_KAFKA_SSL_CAFILE"
ENV_KAFKA_SSL_CERTFILE = "FLOWMONKEY_KAFKA_SSL_CERTFILE"
ENV_KAFKA_SSL_KEYFILE = "FLOWMONKEY_KAFKA_SSL_KEYFILE"
ENV_API_KEYS = "FLOWMONKEY_API_KEYS"
ENV_INBOUND_EMAIL_SECRET = "FLOWMONKEY_INBOUND_EMAIL_SECRET"
ENV_INBOUND_EMAIL_SIGNATURE = "FLOWMONKEY_INBOUND_EMAIL_SIGNATURE"
ENV_INBOUND_EMAIL_MAX_BYTES = "FLOWMONKEY_INBOUND_EMAIL_MAX_BYTES"
ENV_METRICS_PORT = "FLOWMONKEY_METRICS_PORT"
ENV_LOG_FORMAT = "FLOWMONKEY_LOG_FORMAT"
ENV_SECRET_PREFIX = "FLOWMONKEY_SECRET_PREFIX"
ENV_TRUSTED_PROXIES = "FLOWMONKEY_TRUSTED_PROXIES"
ENV_PUBLIC_URL = "FLOWMONKEY_PUBLIC_URL"
ENV_CAPTCHA_VERIFY_URLS = "FLOWMONKEY_CAPTCHA_VERIFY_URLS"
ENV_UI_SECRET = "FLOWMONKEY_UI_SECRET"
LOG_FORMATS = ("text", "json")

DEFAULT_TOPIC_PREFIX = "flowmonkey"
DEFAULT_PARTITIONS = 12
MAX_PARTITIONS = 10_000
DEFAULT_SCHEMA = "flowmonkey"
#: the broker's ``default.replication.factor`` (CreateTopics with -1, Kafka 2.4+)
DEFAULT_REPLICATION_FACTOR = -1
MAX_REPLICATION_FACTOR = 32767  # an int16 in Kafka's protocol
DEFAULT_SECURITY_PROTOCOL = "PLAINTEXT"

# KafkaSecurity's fields as this module's variables, for its messages
_SECURITY_LABELS = {
    "protocol": ENV_KAFKA_SECURITY_PROTOCOL,
    "sasl_mechanism": ENV_KAFKA_SASL_MECHANISM,
    "username": ENV_KAFKA_SASL_USERNAME,
    "password": ENV_KAFKA_SASL_PASSWORD,
    "ssl_cafile": ENV_KAFKA_SSL_CAFILE,
    "ssl_certfile": ENV_KAFKA_SSL_CERTFILE,
    "ssl_keyfile": ENV_KAFKA_SSL_KEYFILE,
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")
# the longest suffix FlowMonkey appends (".dead-letter"); Kafka allows 249 characters
_TOPIC_PREFIX_MAX = 249 - len(".dead-letter")
_PORT = re.compile(r"[0-9]{1,5}")
_DSN_SCHEMES = ("postgres", "postgresql")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class SettingsError(FlowMonkeyError, ValueError):
    """A setting has a value FlowMonkey cannot use; the message names it and the fix."""

    code = "SETTINGS_INVALID"


@dataclass(frozen=True, slots=True)
class Settings:
    """What a FlowMonkey process runs on. Build it with :meth:`from_env`, change it
    with :meth:`replace` (both validate), and turn it into backends with
    :meth:`make_log` and :meth:`make_projection`."""

    kafka_bootstrap: str | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    # kept out of the repr: the DSN usually carries a password
    postgres_dsn: str | None = field(default=None, repr=False)
    data_dir: Path | None = None
    partitions: int = DEFAULT_PARTITIONS
    exactly_once: bool = True
    replication_factor: int = DEFAULT_REPLICATION_FACTOR
    kafka_security_protocol: str = DEFAULT_SECURITY_PROTOCOL
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    metrics_port: int | None = None
    log_format: str = "text"
    trusted_proxies: tuple[str, ...] = ()
    public_url: str | None = None
    captcha_verify_urls: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        check_bootstrap(self.kafka_bootstrap, ENV_KAFKA_BOOTSTRAP)
        check_topic_prefix(self.topic_prefix, ENV_TOPIC_PREFIX)
        check_dsn(self.postgres_dsn, ENV_POSTGRES_DSN)
        if not isinstance(self.partitions, int) or isinstance(self.partitions, bool) or \
                not 1 <= self.partitions <= MAX_PARTITIONS:
            raise SettingsError(f"{ENV_PARTITIONS} must be a whole number from 1 to "
                                f"{MAX_PARTITIONS}, not {self.partitions!r}")
        # names are case-insensitive for users; kept upper-case, as Kafka spells them
        object.__setattr__(self, "kafka_security_protocol",
                           str(self.kafka_security_protocol).strip().upper())
        object.__setattr__(self, "kafka_sasl_mechanism", _upper(self.kafka_sasl_mechanism))
        if self.metrics_port is not None:
            parse_port(str(self.metrics_port), ENV_METRICS_PORT)
        object.__setattr__(self, "log_format", str(self.log_format).strip().lower())
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"{ENV_LOG_FORMAT} must be one of {', '.join(LOG_FORMATS)}, "
                                f"not {self.log_format[:20]!r}")
        if not _valid_replication_factor(self.replication_factor):
            raise SettingsError(_replication_factor_message(repr(self.replication_factor)))
        check_forms(self.trusted_proxies, self.public_url, self.captcha_verify_urls)
        from flowmonkey.log.kafka_security import security_problem

        problem = security_problem(
            protocol=self.kafka_security_protocol, sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username, password=self.kafka_sasl_password,
            ssl_cafile=_text(self.kafka_ssl_cafile), ssl_certfile=_text(self.kafka_ssl_certfile),
            ssl_keyfile=_text(self.kafka_ssl_keyfile), labels=_SECURITY_LABELS)
        if problem is not None:
            raise SettingsError(problem)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); unset or empty variables
        keep their defaults."""
        source = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = source.get(name, "").strip()
            return value or None

        def path(name: str) -> Path | None:
            value = get(name)
            return Path(value).expanduser() if value else None

        return cls(
            kafka_bootstrap=get(ENV_KAFKA_BOOTSTRAP),
            topic_prefix=get(ENV_TOPIC_PREFIX) or DEFAULT_TOPIC_PREFIX,
            postgres_dsn=get(ENV_POSTGRES_DSN),
            data_dir=path(ENV_DATA_DIR),
            partitions=parse_partitions(get(ENV_PARTITIONS), ENV_PARTITIONS),
            exactly_once=parse_bool(get(ENV_EXACTLY_ONCE), ENV_EXACTLY_ONCE, default=True),
            replication_factor=parse_replication_factor(get(ENV_REPLICATION_FACTOR),
                                                        ENV_REPLICATION_FACTOR),
            kafka_security_protocol=get(ENV_KAFKA_SECURITY_PROTOCOL)
            or DEFAULT_SECURITY_PROTOCOL,
            kafka_sasl_mechanism=get(ENV_KAFKA_SASL_MECHANISM),
            kafka_sasl_username=get(ENV_KAFKA_SASL_USERNAME),
            # as is: spaces may be part of a password (only an empty one is unset)
            kafka_sasl_password=source.get(ENV_KAFKA_SASL_PASSWORD) or None,
            kafka_ssl_cafile=path(ENV_KAFKA_SSL_CAFILE),
            kafka_ssl_certfile=path(ENV_KAFKA_SSL_CERTFILE),
            kafka_ssl_keyfile=path(ENV_KAFKA_SSL_KEYFILE),
            metrics_port=parse_port(get(ENV_METRICS_PORT), ENV_METRICS_PORT),
            log_format=get(ENV_LOG_FORMAT) or "text",
            trusted_proxies=tuple(p.strip() for p in (get(ENV_TRUSTED_PROXIES) or "")
                                  .split(",") if p.strip()),
            public_url=get(ENV_PUBLIC_URL),
            captcha_verify_urls=parse_captcha_urls(get(ENV_CAPTCHA_VERIFY_URLS),
                                                   ENV_CAPTCHA_VERIFY_URLS),
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (``None`` values are ignored), validated again."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def __repr__(self) -> str:
        dsn = redact_dsn(self.postgres_dsn) if self.postgres_dsn else None
        password = "***" if self.kafka_sasl_password else None
        return (f"Settings(kafka_bootstrap={self.kafka_bootstrap!r}, "
                f"topic_prefix={self.topic_prefix!r}, postgres_dsn={dsn!r}, "
                f"data_dir={self.data_dir!r}, partitions={self.partitions!r}, "
                f"exactly_once={self.exactly_once!r}, "
                f"replication_factor={self.replication_factor!r}, "
                f"kafka_security_protocol={self.kafka_security_protocol!r}, "
                f"kafka_sasl_mechanism={self.kafka_sasl_mechanism!r}, "
                f"kafka_sasl_username={self.kafka_sasl_username!r}, "
                f"kafka_sasl_password={password!r}, "
                f"kafka_ssl_cafile={self.kafka_ssl_cafile!r}, "
                f"kafka_ssl_certfile={self.kafka_ssl_certfile!r}, "
                f"kafka_ssl_keyfile={self.kafka_ssl_keyfile!r})")

    # ------------------------------------------------------------------ descriptions

    @property
    def log_kind(self) -> str:
        """``"kafka"``, ``"embedded"`` (durable, under ``data_dir``) or ``"memory"``."""
        if self.kafka_bootstrap:
            return "kafka"
        return "embedded" if self.data_dir is not None else "memory"

    def describe_log(self) -> str:
        if self.kafka_bootstrap:
            if self.kafka_security_protocol == DEFAULT_SECURITY_PROTOCOL:
                return f"Kafka at {self.kafka_bootstrap}"
            return f"Kafka at {self.kafka_bootstrap} ({self.kafka_security().describe()})"
        if self.data_dir is not None:
            return f"the embedded log in {self.data_dir}"
        return "the embedded log in memory"

    def describe_projection(self, schema: str = DEFAULT_SCHEMA) -> str:
        if self.postgres_dsn:
            return f'PostgreSQL {redact_dsn(self.postgres_dsn)} (schema "{schema}")'
        return "the memory projection"

    # ------------------------------------------------------------------ backends

    def make_log(self, *, client_id: str = "flowmonkey") -> Log:
        """Kafka when a bootstrap is set, else the durable embedded log under
        ``data_dir``, else the embedded log in memory. Not started."""
        if self.kafka_bootstrap:
            from flowmonkey.log.kafka import KafkaLog

            return KafkaLog(self.kafka_bootstrap, topic_prefix=self.topic_prefix,
                            partitions=self.partitions, exactly_once=self.exactly_once,
                            client_id=client_id, replication_factor=self.replication_factor,
                            security=self.kafka_security())
        from flowmonkey.log.embedded import EmbeddedLog

        return EmbeddedLog(path=self.data_dir, partitions=self.partitions,
                           topic_prefix=self.topic_prefix)

    def kafka_security(self) -> KafkaSecurity:
        """How to connect to Kafka: TLS and SASL (validated with the settings)."""
        from flowmonkey.log.kafka_security import KafkaSecurity

        return KafkaSecurity(
            protocol=self.kafka_security_protocol, sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username, password=self.kafka_sasl_password,
            ssl_cafile=_text(self.kafka_ssl_cafile), ssl_certfile=_text(self.kafka_ssl_certfile),
            ssl_keyfile=_text(self.kafka_ssl_keyfile))

    def make_projection(self, *, schema: str = DEFAULT_SCHEMA) -> Projection:
        """The Postgres projection in ``schema`` when a DSN is set, else the memory
        projection. Not started (starting a Postgres one runs its migrations)."""
        if self.postgres_dsn:
            from flowmonkey.projections.postgres import PostgresProjection

            return PostgresProjection(self.postgres_dsn, schema)
        from flowmonkey.projections.memory import MemoryProjection

        return MemoryProjection()


# --------------------------------------------------------------------------- parsing


def check_forms(trusted_proxies: tuple[str, ...], public_url: str | None,
                captcha_urls: tuple[tuple[str, str], ...]) -> None:
    from flowmonkey.forms.addresses import parse_networks
    from flowmonkey.forms.captcha import PROVIDERS

    try:
        parse_networks(trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"{ENV_TRUSTED_PROXIES} must list CIDRs separated by commas "
                            f"(e.g. 10.0.0.0/8,192.168.1.5): {exc}") from None
    if public_url is not None and not _http_url(public_url):
        raise SettingsError(f"{ENV_PUBLIC_URL} must be an http(s) URL such as "
                            f"https://forms.example.com, not {public_url[:100]!r}")
    for provider, url in captcha_urls:
        if provider not in PROVIDERS or not _http_url(url):
            raise SettingsError(f"{ENV_CAPTCHA_VERIFY_URLS} must be PROVIDER=URL pairs "
                                f"(providers: {', '.join(PROVIDERS)}; http(s) URLs), "
                                f"not {provider[:30]!r}={url[:100]!r}")


def _http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_captcha_urls(text: str | None, name: str) -> tuple[tuple[str, str], ...]:
    if text is None:
        return ()
    pairs = []
    for entry in text.split(","):
        if not entry.strip():
            continue
        provider, sep, url = entry.partition("=")
        if not sep:
            raise SettingsError(f"{name} must be PROVIDER=URL pairs separated by commas, "
                                f"not {entry.strip()[:100]!r}")
        pairs.append((provider.strip().lower(), url.strip()))
    return tuple(pairs)


def parse_bool(text: str | None, name: str, *, default: bool) -> bool:
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false (also 1/0, yes/no, on/off), "
                        f"not {text!r}")


def parse_partitions(text: str | None, name: str) -> int:
    if text is None:
        return DEFAULT_PARTITIONS
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARTITIONS:
        raise SettingsError(f"{name} must be a whole number from 1 to {MAX_PARTITIONS}, "
                            f"not {text!r}")
    return value


def parse_port(text: str | None, name: str) -> int | None:
    """A TCP port, 1-65535 (None stays None: not given)."""
    if text is None:
        return None
    if not _PORT.fullmatch(text.strip()) or not 1 <= int(text.strip()) <= 65535:
        raise SettingsError(f"{name} must be a port number from 1 to 65535, not {text!r}")
    return int(text.strip())


def parse_replication_factor(text: str | None, name: str) -> int:
    if text is None:
        return DEFAULT_REPLICATION_FACTOR
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not _valid_replication_factor(value):
        raise SettingsError(_replication_factor_message(repr(text), name))
    return value


def _valid_replication_factor(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (
        value == DEFAULT_REPLICATION_FACTOR or 1 <= value <= MAX_REPLICATION_FACTOR)


def _replication_factor_message(shown: str, name: str = ENV_REPLICATION_FACTOR) -> str:
    return (f"{name} must be -1 (the broker's default.replication.factor) or a whole "
            f"number from 1 to the number of brokers, not {shown}")


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _upper(text: str | None) -> str | None:
    return None if text is None else text.strip().upper()


def check_bootstrap(value: str | None, name: str) -> None:
    if value is None:
        return
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not (sep and host and _PORT.fullmatch(port) and 0 < int(port) < 65536):
            raise SettingsError(
                f"{name} must list Kafka brokers as host:port[,host:port…] "
                f"(e.g. localhost:9092), not {value!r}")


def check_topic_prefix(value: str, name: str) -> None:
    if not _TOPIC_CHARS.fullmatch(value) or len(value) > _TOPIC_PREFIX_MAX:
        raise SettingsError(
            f"{name} must be 1-{_TOPIC_PREFIX_MAX} characters of letters, digits, '.', "
            f"'_' and '-' (Kafka topic names), not {value!r}")


def check_dsn(value: str | None, name: str) -> None:
    if value is None:
        return
    try:
        scheme = urlsplit(value).scheme
    except ValueError:
        scheme = ""
    if scheme not in _DSN_SCHEMES:
        raise SettingsError(
            f"{name} must be a PostgreSQL URL like "
            f"postgresql://user:password@host:5432/database, not {redact_dsn(value)!r}")


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (in the URL's user part, a
    ``password=`` query parameter, or a ``password=`` keyword), safe to print."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return _KEYWORD_PASSWORD.sub(r"\1***", dsn)
    if not parts.scheme or (not parts.netloc and not parts.query):
        return _KEYWORD_PASSWORD.sub(r"\1***", dsn)
    netloc = parts.netloc
    userinfo, at, hostinfo = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() == "password" else v)
                               for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


DEFAULT_SECRET_PREFIX = "FLOWMONKEY_SECRET_"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def vault_from_env(env: Mapping[str, str] | None = None) -> EnvVaultProvider:
    """The vault of the commands that run handlers: secrets from the environment
    variables named ``FLOWMONKEY_SECRET_PREFIX`` (default ``FLOWMONKEY_SECRET_``) plus
    the secret's name upper-cased, with ``-``, ``.`` and ``/`` as ``_``."""
    from flowmonkey.handlers.base import EnvVaultProvider

    source = os.environ if env is None else env
    prefix = source.get(ENV_SECRET_PREFIX, "").strip() or DEFAULT_SECRET_PREFIX
    if not _ENV_NAME.fullmatch(prefix):
        raise SettingsError(f"{ENV_SECRET_PREFIX} must be the start of an environment "
                            "variable's name: letters, digits and _, not starting with a "
                            f"digit (default {DEFAULT_SECRET_PREFIX})")
    return EnvVaultProvider(prefix=prefix)
