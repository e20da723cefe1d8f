"""How the Kafka log connects to a secured cluster: TLS and/or SASL.

:class:`KafkaSecurity` is one small frozen value passed as ``KafkaLog(...,
security=KafkaSecurity(...))``; :meth:`KafkaSecurity.client_kwargs` turns it into the
aiokafka settings that every client the log builds (admin, readers, group members,
producers) shares, so they all connect the same way.

* ``protocol``: ``PLAINTEXT`` (the default), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
* ``sasl_mechanism``: ``PLAIN`` (the default for the SASL protocols), ``SCRAM-SHA-256``
  or ``SCRAM-SHA-512``; with ``username`` and ``password``, both required for SASL.
* ``ssl_cafile``: the CA bundle (PEM) that signed the brokers' certificates; without it
  the system's trusted CAs are used (managed clusters with public certificates).
  ``ssl_certfile`` / ``ssl_keyfile``: a client certificate and its key, for clusters
  that authenticate clients by certificate (mutual TLS).

The password is kept out of the ``repr``; the log's error messages never quote it
(:meth:`KafkaSecurity.scrub`).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "BootstrapFailed",
    "KafkaSecurity",
    "connection_hint",
    "connection_problem",
    "security_problem",
]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_SASL_MECHANISM = "PLAIN"

# field name -> how messages name it; Settings passes its environment variables instead
_FIELD_LABELS: Mapping[str, str] = {
    "protocol": "protocol",
    "sasl_mechanism": "sasl_mechanism",
    "username": "username",
    "password": "password",
    "ssl_cafile": "ssl_cafile",
    "ssl_certfile": "ssl_certfile",
    "ssl_keyfile": "ssl_keyfile",
}


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """TLS and SASL settings of a Kafka connection; see the module docstring. The
    default is PLAINTEXT (no TLS, no authentication). Invalid combinations raise
    ``ValueError`` naming the field."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        # names are case-insensitive for users; aiokafka wants them upper-case
        object.__setattr__(self, "protocol", str(self.protocol).strip().upper())
        if self.sasl_mechanism is not None:
            object.__setattr__(self, "sasl_mechanism", self.sasl_mechanism.strip().upper())
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(Path(value).expanduser()))
        problem = security_problem(
            protocol=self.protocol, sasl_mechanism=self.sasl_mechanism,
            username=self.username, password=self.password, ssl_cafile=self.ssl_cafile,
            ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile)
        if problem is not None:
            raise ValueError(problem)

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """A short safe description, e.g. ``SASL_SSL, SCRAM-SHA-512 as user 'app'``."""
        if not self.uses_sasl:
            return self.protocol
        return f"{self.protocol}, {self.mechanism} as user {self.username!r}"

    @property
    def mechanism(self) -> str:
        return self.sasl_mechanism or DEFAULT_SASL_MECHANISM

    def client_kwargs(self) -> dict[str, Any]:
        """The aiokafka connection settings (the same for admin, consumer and producer).

        Builds the TLS context (reading the CA and certificate files) on every call:
        call it once per log and share the result. Raises ``ValueError`` (without the
        password) when a TLS file cannot be loaded.
        """
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            kwargs["ssl_context"] = self._ssl_context()
        if self.uses_sasl:
            kwargs.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=self.password)
        return kwargs

    def scrub(self, text: str) -> str:
        """``text`` with the password replaced by ``***``, should a message quote it."""
        if self.password:
            return text.replace(self.password, "***")
        return text

    def _ssl_context(self) -> ssl.SSLContext:
        from aiokafka.helpers import create_ssl_context

        try:
            # an explicit (empty) password: an encrypted key then fails here at once,
            # instead of OpenSSL prompting for a pass phrase on the terminal
            context: ssl.SSLContext = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile,
                password=_no_key_password)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(f"{name}={value}" for name, value in (
                ("ssl_cafile", self.ssl_cafile), ("ssl_certfile", self.ssl_certfile),
                ("ssl_keyfile", self.ssl_keyfile)) if value)
            raise ValueError(
                f"cannot load the TLS files for Kafka ({files or 'the system CAs'}): "
                f"{self.scrub(str(exc))}. They must be PEM files: the CA bundle that "
                "signed the brokers' certificates, and a client certificate and its "
                "(unencrypted) key") from None
        return context


def _no_key_password() -> bytes:
    return b""


def security_problem(
    *,
    protocol: str,
    sasl_mechanism: str | None,
    username: str | None,
    password: str | None,
    ssl_cafile: str | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    labels: Mapping[str, str] = _FIELD_LABELS,
) -> str | None:
    """What is wrong with these settings, or ``None``. ``labels`` names each field in
    the message (Settings passes its environment variables); a password is never
    quoted."""
    name = {**_FIELD_LABELS, **labels}
    protocol = protocol.strip().upper()
    if protocol not in SECURITY_PROTOCOLS:
        return (f"{name['protocol']} must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"not {protocol!r}")
    sasl = protocol.startswith("SASL_")
    tls = protocol in ("SSL", "SASL_SSL")
    if sasl_mechanism is not None and sasl_mechanism.strip().upper() not in SASL_MECHANISMS:
        return (f"{name['sasl_mechanism']} must be one of {', '.join(SASL_MECHANISMS)}, "
                f"not {sasl_mechanism!r}")
    given_sasl = [name[f] for f, v in (("sasl_mechanism", sasl_mechanism),
                                       ("username", username), ("password", password))
                  if v is not None]
    if given_sasl and not sasl:
        return (f"{' and '.join(given_sasl)} {'is' if len(given_sasl) == 1 else 'are'} set "
                f"but {name['protocol']} is {protocol}, which does not authenticate: set "
                f"{name['protocol']} to SASL_SSL (or SASL_PLAINTEXT), or unset them")
    if sasl:
        missing = [name[f] for f, v in (("username", username), ("password", password))
                   if not v]
        if missing:
            return (f"{name['protocol']}={protocol} authenticates with SASL "
                    f"({(sasl_mechanism or DEFAULT_SASL_MECHANISM).strip().upper()}): set "
                    f"{' and '.join(missing)}")
    given_tls = [(f, v) for f, v in (("ssl_cafile", ssl_cafile),
                                     ("ssl_certfile", ssl_certfile),
                                     ("ssl_keyfile", ssl_keyfile)) if v is not None]
    if given_tls and not tls:
        names = " and ".join(name[f] for f, _ in given_tls)
        return (f"{names} {'is' if len(given_tls) == 1 else 'are'} set but "
                f"{name['protocol']} is {protocol}, which does not use TLS: set "
                f"{name['protocol']} to SSL or SASL_SSL, or unset them")
    if ssl_keyfile is not None and ssl_certfile is None:
        return f"{name['ssl_keyfile']} is set without {name['ssl_certfile']}: set both"
    for field_name, value in given_tls:
        if not Path(value).expanduser().is_file():
            return f"{name[field_name]} names {value!r}, which is not a file"
    return None


# --------------------------------------------------------------------------- diagnosis


class BootstrapFailed(Exception):
    """No bootstrap server could be used, with the causes :func:`connection_problem`
    found; the Kafka log turns it into a LogError (scrubbed of the password)."""


async def connection_problem(kwargs: Mapping[str, Any], client_id: str,
                             timeout_ms: int) -> str | None:
    """Why the bootstrap servers in ``kwargs`` (a log's connection settings) cannot be
    used: one direct connection to each, with the same security settings, and the
    error each one fails with (``host:port: Type: message; ...``), or ``None`` when
    they all answer. Only called after a client failed to bootstrap: aiokafka logs
    the cause (refused credentials, a certificate that does not verify, nothing
    listening) but raises only "Unable to bootstrap"."""
    from aiokafka.conn import collect_hosts, create_conn
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.metadata import MetadataRequest

    options = {k: v for k, v in kwargs.items() if k != "bootstrap_servers"}
    causes: list[str] = []
    for host, port, _ in collect_hosts(kwargs["bootstrap_servers"], randomize=False):
        step = "connecting"
        conn: Any = None
        try:
            conn = await create_conn(host, port, client_id=client_id,
                                     request_timeout_ms=timeout_ms, **options)
            # what the client's bootstrap does next; a listener that wants SASL or
            # TLS lets a plain client connect and closes the connection here
            step = "requesting metadata"
            await conn.send(MetadataRequest([]))
        except (OSError, KafkaError, TimeoutError) as cause:
            text = str(cause)
            name = type(cause).__name__
            causes.append(f"{host}:{port}: {step} failed: "
                          f"{text if name in text else f'{name}: {text}'}".rstrip(": "))
        finally:
            if conn is not None:
                conn.close()
    return "; ".join(causes) or None


def connection_hint(causes: str, security: KafkaSecurity | None = None) -> str:
    """What to check, for the causes :func:`connection_problem` found by a client with
    ``security`` (when known)."""
    if security is not None and "connecting failed" in causes:
        tls, protocol = security.uses_tls, security.protocol
        # the socket opened, then the first exchange was cut: the two ends do not
        # speak the same thing (a TLS client on a plaintext listener is reset)
        if tls and "ConnectionReset" in causes:
            return ("The listener cut the TLS handshake: it probably does not speak TLS "
                    f"(a PLAINTEXT or SASL_PLAINTEXT port?), while this client uses "
                    f"{protocol}: check the security protocol and the port.")
        if not tls and "closed" in causes:
            return ("The listener closed the connection at once: it probably expects TLS "
                    f"(an SSL or SASL_SSL port?), while this client uses {protocol}: "
                    "check the security protocol and the port.")
    if "SaslAuthenticationFailed" in causes or "AuthenticationFailed" in causes:
        return ("The brokers refused the credentials: check the user name and password "
                "(and that the SASL mechanism is one the user was created for).")
    if "SaslMechanism" in causes or "IllegalSaslState" in causes:
        return ("The listener does not take SASL, or not this mechanism: check the "
                "security protocol, the SASL mechanism and the port.")
    if "requesting metadata failed" in causes:
        return ("The listener accepted the connection and then closed it: it may expect "
                "SASL or TLS, so check the security protocol and the port.")
    if "CERTIFICATE_VERIFY_FAILED" in causes:
        # the listener does speak TLS: the client did not accept its certificate
        return ("The brokers' TLS certificate did not verify: set the CA file to the CA "
                "(PEM) that signed it (without one, only the system's trusted CAs are "
                "accepted) and check that the certificate names the host of the bootstrap "
                "servers.")
    if "SSL" in causes or "certificate" in causes.lower():
        return ("The TLS handshake failed: check that the listener speaks TLS, that the CA "
                "file signed the brokers' certificates and that their names match the "
                "bootstrap servers.")
    return ("Check that a broker is running and listening there, that the bootstrap "
            "servers name it (host:port[,host:port…]) and that the security protocol is "
            "the listener's.")
