"""API keys and tenant scoping.

A request names its key in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
The key's SHA-256 is compared in constant time with every configured key's (no early
exit, equal lengths: the time taken says nothing about which key, how much of one, or
how long one is). A tenant-bound key acts for its tenant only; an admin key acts for
every tenant, or for the one an ``X-Tenant-Id`` header names. Keys never appear in a
log line, an error or a ``repr``: a principal is described by its tenant only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request

from flowmonkey.api.errors import ApiError
from flowmonkey.settings import TENANT_ID_RULE, ApiKey, valid_tenant_id

log = logging.getLogger("flowmonkey.api")

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
