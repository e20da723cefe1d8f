"""API keys and tenant scoping.

A request names its key in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
The key's SHA-256 is compared in constant time with every configured key's (no early
exit, equal lengths: the time taken says nothing about which key, how much of one, or
how long one is). A tenant-bound key acts for its tenant only; an admin key acts for
every tenant, or for the one an ``X-Tenant-Id`` header names. Keys never appear in a
log line, an error or a ``repr``: a principal is described by its tenant only.

The keys come from ``FLOWMONKEY_API_KEYS`` (:func:`api_keys_from_env`):
``KEY=TENANT[,KEY=TENANT…]``, a tenant of ``*`` making an admin key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fastapi import Request

from flowmonkey.api.errors import ApiError
from flowmonkey.settings import ENV_API_KEYS, SettingsError

log = logging.getLogger("flowmonkey.api")

#: shorter keys are refused: a key is the only thing between the API and the data
MIN_API_KEY_LENGTH = 16
ADMIN_TENANT = "*"

_API_KEY_CHARS = re.compile(r"[!-~]+")  # printable ASCII, no spaces (a header value)
# No "/": the kernel scopes idempotency keys as "tenant/flow/key", so a tenant holding a
# "/" could name another tenant's scope ("acme/greet" + flow "approve" is "acme" + flow
# "greet" + key "approve/...") and be handed that tenant's execution.
_TENANT_CHARS = re.compile(r"[A-Za-z0-9._:@-]{1,200}")
TENANT_ID_RULE = "1-200 letters, digits and '._:@-'"

TENANT_HEADER = "X-Tenant-Id"
KEY_HEADER = "X-API-Key"
_HOW = (f"send the key as 'Authorization: Bearer <key>' or '{KEY_HEADER}: <key>' "
        "(keys are configured in FLOWMONKEY_API_KEYS)")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: ``tenant_id`` scopes its commands and queries (``None``:
    every tenant, for an admin key without ``X-Tenant-Id``)."""

    tenant_id: str | None
    admin: bool


class ApiAuth:
    """The configured keys; :meth:`principal` turns a request into a :class:`Principal`."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = [(_digest(k.secret), k) for k in keys]
        if not self._keys:
            raise ValueError("ApiAuth needs at least one key (or run without auth)")

    def __repr__(self) -> str:
        return f"ApiAuth({len(self._keys)} keys)"

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        """The configured keys (the explorer names a session's key by a keyed hash)."""
        return tuple(key for _, key in self._keys)

    def match(self, presented: str) -> ApiKey | None:
        """The key equal to ``presented``, compared with every key in constant time."""
        given = _digest(presented)
        found: ApiKey | None = None
        for secret, key in self._keys:
            if hmac.compare_digest(secret, given):
                found = key
        return found

    def principal(self, request: Request) -> Principal:
        presented = presented_key(request)
        if presented is None:
            raise ApiError(401, "UNAUTHENTICATED", f"no API key: {_HOW}",
                           headers={"WWW-Authenticate": "Bearer"})
        key = self.match(presented)
        if key is None:
            client = request.client.host if request.client else "unknown"
            log.info("rejected a request from %s: unknown API key", client)
            raise ApiError(401, "UNAUTHENTICATED", f"the API key is not valid: {_HOW}",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        asked = requested_tenant(request)
        if key.tenant_id is None:
            return Principal(tenant_id=asked, admin=True)
        if asked is not None and asked != key.tenant_id:
            raise ApiError(403, "FORBIDDEN",
                           f"this key acts for its own tenant only: leave out {TENANT_HEADER} "
                           "or name the key's tenant")
        return Principal(tenant_id=key.tenant_id, admin=False)


def _digest(key: str) -> bytes:
    """Keys are compared by their SHA-256: equal lengths, so compare_digest's time does
    not even tell a key's length (it may for inputs of different lengths)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def presented_key(request: Request) -> str | None:
    """The key a request carries, from ``Authorization: Bearer`` or ``X-API-Key``."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    header = request.headers.get(KEY_HEADER)
    return header.strip() if header and header.strip() else None


def requested_tenant(request: Request) -> str | None:
    """The tenant ``X-Tenant-Id`` names; held to the rule of a key's tenant, because a
    tenant id with a "/" would share the kernel's idempotency scopes of another."""
    value = request.headers.get(TENANT_HEADER, "").strip()
    if not value:
        return None
    if not valid_tenant_id(value):
        # the value is not quoted: a key pasted into the wrong header must not echo
        raise ApiError(400, "INVALID_TENANT_ID", f"{TENANT_HEADER} must be {TENANT_ID_RULE}")
    return value


def principal_without_auth(request: Request) -> Principal:
    """``--no-auth`` (local development): every request is an admin's."""
    return Principal(tenant_id=requested_tenant(request), admin=True)


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key of the HTTP API and the tenant it acts for (``None``: an admin key,
    which sees every tenant). The secret never shows in a ``repr``."""

    secret: str = field(repr=False)
    tenant_id: str | None

    @property
    def admin(self) -> bool:
        return self.tenant_id is None

    def __repr__(self) -> str:
        return f"ApiKey(tenant_id={self.tenant_id!r}, secret='***')"


def parse_api_keys(text: str | None, name: str = ENV_API_KEYS) -> tuple[ApiKey, ...]:
    """``KEY=TENANT[,KEY=TENANT…]`` (``*`` as the tenant: an admin key); empty entries
    are ignored. Messages name an entry by its position, never quote a key."""
    if text is None:
        return ()
    keys: list[ApiKey] = []
    seen: set[str] = set()
    example = f"{name}=<key>=tenant-a,<key>=* (a key of {MIN_API_KEY_LENGTH}+ characters)"
    for number, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        secret, sep, tenant = entry.rpartition("=")
        secret, tenant = secret.strip(), tenant.strip()
        where = f"{name} entry {number}"
        if not sep or not secret:
            raise SettingsError(f"{where} is not KEY=TENANT; expected {example}")
        if "=" in secret or not _API_KEY_CHARS.fullmatch(secret):
            raise SettingsError(f"{where}: a key is printable ASCII without spaces, "
                                "',' or '='")
        if len(secret) < MIN_API_KEY_LENGTH:
            raise SettingsError(
                f"{where}: the key has {len(secret)} characters, fewer than "
                f"{MIN_API_KEY_LENGTH}; make one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'")
        if tenant != ADMIN_TENANT and not valid_tenant_id(tenant):
            raise SettingsError(
                f"{where}: the tenant must be {ADMIN_TENANT!r} (an admin key) or "
                f"{TENANT_ID_RULE} (the value is not shown: it may be a key written in "
                "the wrong order)")
        if secret in seen:
            raise SettingsError(f"{where} repeats the key of an earlier entry; give each "
                                "key once")
        seen.add(secret)
        keys.append(ApiKey(secret, None if tenant == ADMIN_TENANT else tenant))
    return tuple(keys)


def valid_tenant_id(text: str) -> bool:
    """Whether ``text`` may name a tenant (in a key's entry or an ``X-Tenant-Id``)."""
    return _TENANT_CHARS.fullmatch(text) is not None


def api_keys_from_env(env: Mapping[str, str] | None = None) -> tuple[ApiKey, ...]:
    """The keys in ``FLOWMONKEY_API_KEYS`` of ``env`` (default ``os.environ``)."""
    source = os.environ if env is None else env
    return parse_api_keys(source.get(ENV_API_KEYS, "").strip() or None)
