"""Secrets in flow definitions, hidden from tenant keys.

Flows are shared by every tenant (a flow has no tenant), and their step configs are
written by operators, who sometimes put a credential in them (``headers:
{Authorization: ...}``, ``apiKey: ...``, a URL with ``?token=``). A tenant-bound key
reads flow definitions with such values replaced by ``[redacted]``; an admin key
reads them as stored. A reference to the vault (``{"$vault": "name"}``) is no secret
and stays, so a tenant can still see which secret a step uses.

What counts as a secret, anywhere in a config: every value under a ``headers``
object, and the value of every key whose name (lower-cased, without ``-``, ``_``
or spaces) contains ``authorization``, ``token``, ``secret``, ``password``,
``passwd``, ``apikey``, ``cookie``, ``credential`` or ``privatekey`` (or is
``auth``); in a URL, the password of its user info and the values of such query
parameters.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flowmonkey.model.flow import Flow

REDACTED = "[redacted]"
VAULT_KEY = "$vault"

_SECRET_NAME_PARTS = ("authorization", "token", "secret", "password", "passwd", "apikey",
                      "cookie", "credential", "privatekey")
_NAME_NOISE = re.compile(r"[-_\s.]")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", re.ASCII)


def is_secret_name(name: str) -> bool:
    """Whether a config key (or header, or query parameter) names a secret."""
    normal = _NAME_NOISE.sub("", name.lower())
    return normal == "auth" or any(part in normal for part in _SECRET_NAME_PARTS)


def _is_vault_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {VAULT_KEY}


def _hidden(value: Any) -> Any:
    """A secret's value, hidden: null and vault references stay as they are."""
    if value is None or _is_vault_ref(value):
        return value
    if isinstance(value, dict):
        # an object of secrets: keep its shape (and any vault references) visible
        return {k: _hidden(v) for k, v in value.items()}
    return REDACTED


def _redact_url(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if colon else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs],
                              safe="[]")
    if netloc == parts.netloc and query == parts.query:
        return text
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_config(value: Any) -> Any:
    """A copy of a step config (or any part of one) with its secrets hidden."""
    if isinstance(value, dict):
        if _is_vault_ref(value):
            return value
        redacted: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if name.lower() == "headers" or is_secret_name(name):
                redacted[key] = _hidden(item) if not isinstance(item, list) else REDACTED
            else:
                redacted[key] = redact_config(item)
        return redacted
    if isinstance(value, list):
        return [redact_config(item) for item in value]
    if isinstance(value, str) and _URL.match(value):
        return _redact_url(value)
    return value


def redact_flow(flow: Flow) -> Flow:
    """``flow`` with every step's config redacted (see the module's rules)."""
    steps = {key: step.model_copy(update={"config": redact_config(step.config)})
             for key, step in flow.steps.items()}
    return flow.model_copy(update={"steps": steps})
