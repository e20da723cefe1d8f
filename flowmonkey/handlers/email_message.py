"""The ``email-reply`` handler's config and the mail it builds (no I/O here).

The config (camelCase, as flows write it; :data:`CONFIG_SCHEMA` is what the engine
checks a flow's step against when the flow is registered)::

    to, from, subject, text, html?    templates: ${path} over the execution's context
    smtp: {host, port?, security?: starttls | tls | none, username?, passwordSecret?,
           timeoutMs?}
    waitForReply?: bool               wait for a reply (a signal wait) or succeed at once
    replyDomain?: domain              of the reply address (default: the sender's)
    replyTimeoutMs?: ms               how long a reply may take (the signal's timeout)

A template's placeholder whose path is absent from the context fails the step
(``INPUT_ERROR`` naming the field and the path) rather than sending a mail with a hole
in it. Addresses are checked after rendering (one ``@``, no spaces or control
characters, RFC 5321 lengths), and a subject's line breaks become spaces: the context
is user data, and a line break in a header would let it add headers of its own.

A mail that waits for a reply carries its resume token twice: in the Reply-To address
``reply+<token>@<replyDomain>`` and in the subject as ``[ref:<token>]``, so a reply is
matched whether the inbound mail service keeps the address or only the subject. Its
``Message-ID`` is derived from the step attempt, so a mail sent again by the same
attempt (a processor that died between sending and recording it) has the same id and
receivers can drop the copy.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import Any, Literal

from flowmonkey.handlers.config import ConfigError, int_in
from flowmonkey.kernel.inputs import placeholders, render_text
from flowmonkey.kernel.paths import MISSING, get_path
from flowmonkey.kernel.step_events import MAX_ADDRESS_CHARS, MAX_HEADER_CHARS, MAX_RECIPIENTS

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_SMTP_TIMEOUT_MS = 30_000
MAX_BODY_CHARS = 1_000_000
#: ``reply+<token>@``: a token is lower-case hex (mail systems may change the case of
#: an address), 128 bits from the system's random source
TOKEN_PATTERN = r"[0-9a-f]{32}"
REPLY_PREFIX = "reply+"
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
# ASCII only: a server without SMTPUTF8 takes nothing else in an envelope address
_ADDR_SPEC = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,255}")
_SPACES = re.compile(r"[\r\n\t\v\f]+")
_WIRE = email.policy.SMTP.clone(max_line_length=MAX_HEADER_CHARS)

_TEMPLATE = {"type": "string", "minLength": 1, "maxLength": MAX_BODY_CHARS}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["to", "from", "subject", "text", "smtp"],
    "properties": {
        "to": {"anyOf": [_TEMPLATE, {"type": "array", "items": _TEMPLATE, "minItems": 1,
                                     "maxItems": MAX_RECIPIENTS}],
               "description": "recipient address(es), templates over the context"},
        "from": {**_TEMPLATE, "description": "the sender's address (a template)"},
        "subject": {**_TEMPLATE, "description": "the subject (a template)"},
        "text": {**_TEMPLATE, "description": "the plain-text body (a template)"},
        "html": {**_TEMPLATE, "description": "an HTML body beside the text (a template)"},
        "smtp": {
            "type": "object", "required": ["host"], "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "minLength": 1, "maxLength": 255},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                         "description": "default: 587 (starttls), 465 (tls), 25 (none)"},
                "security": {"enum": ["starttls", "tls", "none"], "default": "starttls"},
                "username": {"type": "string", "minLength": 1, "maxLength": 500},
                "passwordSecret": {"type": "string", "minLength": 1, "maxLength": 200,
                                   "description": "the password's name in the vault"},
                "timeoutMs": {"type": "integer", "minimum": 100, "maximum": 300_000,
                              "default": DEFAULT_SMTP_TIMEOUT_MS},
            },
        },
        "waitForReply": {"type": "boolean", "default": False},
        "replyDomain": {"type": "string", "pattern": "^" + _DOMAIN.pattern + "$",
                        "maxLength": 253},
        "replyTimeoutMs": {"type": "integer", "minimum": 1000},
    },
}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: Security
    username: str | None
    password_secret: str | None
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class EmailConfig:
    to: tuple[str, ...]
    sender: str
    subject: str
    text: str
    html: str | None
    smtp: SmtpSettings
    wait_for_reply: bool
    reply_domain: str | None
    reply_timeout_ms: int | None


@dataclass(frozen=True, slots=True)
class Mail:
    """A rendered mail: the message and what ``email.sent`` records of it."""

    message: EmailMessage
    recipients: tuple[str, ...]
    sender: str
    subject: str
    message_id: str
    reply_to: str | None

    def data(self) -> bytes:
        """The message as sent: CRLF line ends, headers folded only past RFC 5322's
        998-character limit (at 78, a subject with its ``[ref:…]`` would be folded onto
        a line of its own, which some readers show with a leading space)."""
        return self.message.as_bytes(policy=_WIRE)


def parse_config(config: Mapping[str, Any]) -> EmailConfig:
    """The step's config, checked (ConfigError names the field)."""
    smtp = config.get("smtp")
    if not isinstance(smtp, Mapping):
        raise ConfigError("config.smtp must be an object with at least a host")
    security: Security
    match smtp.get("security") or "starttls":
        case "starttls" | "tls" | "none" as given:
            security = given
        case _:
            raise ConfigError("config.smtp.security must be starttls, tls or none")
    host = smtp.get("host")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError("config.smtp.host must be a host name or address")
    username, secret = smtp.get("username"), smtp.get("passwordSecret")
    if (username is None) != (secret is None):
        raise ConfigError("config.smtp.username and config.smtp.passwordSecret go together")
    if secret is not None and security == "none":
        raise ConfigError("config.smtp.security none would send the password in clear "
                          "text: use starttls or tls to log in")
    to = config.get("to")
    templates = [to] if isinstance(to, str) else to
    if not isinstance(templates, list) or not templates \
            or not all(isinstance(t, str) for t in templates):
        raise ConfigError("config.to must be an address or a list of addresses")
    strings = {name: config.get(name) for name in ("from", "subject", "text", "html")}
    for name, value in strings.items():
        if (value is None and name != "html") or (value is not None
                                                  and not isinstance(value, str)):
            raise ConfigError(f"config.{name} must be a string (a template)")
    reply_domain = config.get("replyDomain")
    if reply_domain is not None and (not isinstance(reply_domain, str)
                                     or not _DOMAIN.fullmatch(reply_domain)):
        raise ConfigError("config.replyDomain must be a domain name")
    wait = config.get("waitForReply", False)
    if not isinstance(wait, bool):
        raise ConfigError("config.waitForReply must be true or false")
    reply_timeout = config.get("replyTimeoutMs")
    return EmailConfig(
        to=tuple(templates), sender=str(strings["from"]), subject=str(strings["subject"]),
        text=str(strings["text"]), html=strings["html"],
        smtp=SmtpSettings(
            host=host.strip(), port=int_in(smtp, "port", DEFAULT_PORTS[security], 1, 65535),
            security=security, username=username, password_secret=secret,
            timeout_ms=int_in(smtp, "timeoutMs", DEFAULT_SMTP_TIMEOUT_MS, 100, 300_000)),
        wait_for_reply=wait, reply_domain=reply_domain,
        reply_timeout_ms=None if reply_timeout is None else
        int_in(config, "replyTimeoutMs", 0, 1000, 10 * 365 * 24 * 3_600_000))


def render(field: str, template: str, context: dict[str, Any]) -> str:
    """``template`` over ``context``; a placeholder whose path is absent is an error."""
    for path in placeholders(template):
        if get_path(context, path) is MISSING:
            raise ConfigError(f"config.{field}: ${{{path}}} is not in the context")
    return render_text(template, context)


def address(field: str, rendered: str) -> tuple[str, str]:
    """(display name, address) of a rendered address, checked: one address, alone or
    as ``Name <address>`` (the parser takes the first of several and skips junk
    silently, so what it found must be all there was)."""
    text = rendered.strip()
    name, addr = parseaddr(text)
    whole = text == addr or text.endswith(f"<{addr}>")
    if not whole or len(getaddresses([text])) != 1 or len(addr) > MAX_ADDRESS_CHARS \
            or not _ADDR_SPEC.fullmatch(addr) or _SPACES.search(text):
        raise ConfigError(f"config.{field} is not an email address: {rendered[:100]!r}")
    return name, addr


def build_mail(config: EmailConfig, context: dict[str, Any], attempt_id: str,
               token: str | None) -> Mail:
    """The mail of one attempt (``token``: the resume token a reply carries back)."""
    recipients: list[str] = []
    shown: list[str] = []
    for index, template in enumerate(config.to):
        field = "to" if len(config.to) == 1 else f"to[{index}]"
        name, addr = address(field, render(field, template, context))
        recipients.append(addr)
        shown.append(formataddr((name, addr)))
    sender_name, sender = address("from", render("from", config.sender, context))
    domain = sender.rpartition("@")[2]
    subject = _SPACES.sub(" ", render("subject", config.subject, context)).strip()
    if token is not None:
        subject = f"{subject} [ref:{token}]"
    if len(subject) > MAX_HEADER_CHARS:
        raise ConfigError(f"config.subject renders to {len(subject)} characters, over "
                          f"{MAX_HEADER_CHARS}")
    text = render("text", config.text, context)
    html = render("html", config.html, context) if config.html is not None else None
    for name, body in (("text", text), ("html", html)):
        if body is not None and len(body) > MAX_BODY_CHARS:
            raise ConfigError(f"config.{name} renders to {len(body)} characters, over "
                              f"{MAX_BODY_CHARS}")
    digest = hashlib.blake2b(attempt_id.encode(), digest_size=16).hexdigest()
    message_id = f"<{digest}.flowmonkey@{domain}>"
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender))
    message["To"] = ", ".join(shown)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    reply_to = None
    if token is not None:
        reply_to = f"{REPLY_PREFIX}{token}@{config.reply_domain or domain}"
        message["Reply-To"] = reply_to
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return Mail(message, tuple(recipients), sender, subject, message_id, reply_to)
