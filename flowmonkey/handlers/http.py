"""The ``http`` handler: one HTTP request per step, on ``httpx.AsyncClient``.

Its rules (docs/compatibility.md lists where they differ from FlowMonkey's handler):

* **SSRF guard.** Flows are data that users write, and the engine usually runs next
  to databases, metadata services (169.254.169.254) and admin ports. A URL whose host
  is, or resolves to, a non-public address is refused with ``URL_NOT_ALLOWED`` unless
  the *operator* allows it (``HttpHandler(allow_private=True)`` or the environment
  variable ``FLOWMONKEY_HTTP_ALLOW_PRIVATE=1``); a step's config cannot. Redirects are
  followed one hop at a time so every hop's URL is checked (scheme, ``localhost``
  names, IP literals) before it is sent. Host names are checked where the connection
  is opened (:mod:`flowmonkey.handlers.safe_transport`): each name is resolved once,
  every address it resolves to must be public, and the socket is opened to one of
  those checked addresses, while TLS (SNI, certificate) and the ``Host`` header keep
  the name. A DNS server that answers a public address to one lookup and a private one
  to the next (rebinding) therefore gets nowhere: there is no second lookup. The
  handler connects directly; proxy settings in the environment are not used, because
  a proxy would resolve the name beyond the guard.
* ``timeout`` bounds each attempt as a whole, and the engine's abort signal cancels
  the request.
* ``retries`` is the total number of attempts; ``0`` means one attempt (not zero).
* The output adds ``json`` (the parsed body for JSON responses) and names the
  duration ``durationMs``.
* Response bodies are capped (``max_response_bytes``, default 10 MiB) because the
  output is stored in the log; a larger body fails with ``RESPONSE_TOO_LARGE``.

Headers are never logged: they routinely carry credentials.

**Secrets from the vault.** A header or query parameter (``params``) may name a
secret instead of holding one: ``{"Authorization": {"$vault": "payments-token"}}``.
The engine's :class:`~flowmonkey.handlers.base.VaultProvider` resolves it for each
attempt, so the value lives only in the request: the flow definition, the events
(which never carry a step's config), the projection and the logs keep the reference.
A response that echoes a resolved secret (in its body or headers) has it replaced by
``[redacted]`` before it becomes the step's output, and no error message quotes one.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import os
import ssl
import threading
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import httpcore
import httpx
import orjson

from flowmonkey.handlers.base import HandlerMetadata, HandlerParams, VaultProvider
from flowmonkey.handlers.config import ConfigError, int_in
from flowmonkey.handlers.safe_transport import (
    AddressNotAllowed,
    GuardedTransport,
    Resolver,
    is_public_address,
    parse_address,
    system_resolver,
)
from flowmonkey.model.result import Result, StepResult

__all__ = ["ALLOW_PRIVATE_ENV", "HttpHandler", "Resolver", "is_public_address",
           "system_resolver"]

ALLOW_PRIVATE_ENV = "FLOWMONKEY_HTTP_ALLOW_PRIVATE"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_ERROR_BODY_CHARS = 2000
_PRIVATE_HINT = (f"HTTP steps may only call public addresses; to allow private ones the "
                 f"operator constructs HttpHandler(allow_private=True) or sets "
                 f"{ALLOW_PRIVATE_ENV}=1")

VAULT_KEY = "$vault"
REDACTED = "[redacted]"
#: a reference to a secret of the engine's vault, in place of a header or param value
VAULT_REF_SCHEMA: dict[str, Any] = {
    "type": "object", "required": [VAULT_KEY], "additionalProperties": False,
    "properties": {VAULT_KEY: {"type": "string", "minLength": 1,
                               "description": "the secret's name in the engine's vault"}},
}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri", "description": "http(s) URL to call"},
        # any case: the method is upper-cased before it is sent
        "method": {"type": "string", "enum": [*METHODS, *(m.lower() for m in METHODS)],
                   "default": "GET"},
        "headers": {"type": "object", "additionalProperties": {"anyOf": [
            {"type": ["string", "number", "boolean"]}, VAULT_REF_SCHEMA]},
            "description": "header values, or {\"$vault\": name} for a secret"},
        "params": {"type": "object", "additionalProperties": {"anyOf": [
            {"type": ["string", "number", "boolean"]}, VAULT_REF_SCHEMA]},
            "description": "query parameters added to the URL's own, or {\"$vault\": "
                           "name} for a secret"},
        "body": {"description": "objects and arrays are sent as JSON, strings as-is"},
        "timeout": {"type": "integer", "minimum": 100, "maximum": 300000, "default": 30000,
                    "description": "per-attempt time limit in milliseconds"},
        "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3,
                    "description": "total attempts on network errors (HTTP errors are "
                                   "not retried)"},
    },
}

T = TypeVar("T")


class _NotAllowed(Exception):
    pass


class _Aborted(Exception):
    pass


class _TooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _VaultRef:
    """A header or param value to be read from the vault: ``{"$vault": name}``."""

    name: str


_Value = str | _VaultRef


@dataclass(frozen=True, slots=True)
class _Config:
    url: str
    method: str
    headers: dict[str, _Value]
    params: dict[str, _Value]
    body: Any
    timeout_ms: int
    attempts: int


@dataclass(frozen=True, slots=True)
class _Request:
    """A config with its vault references resolved; ``secrets`` are the values read."""

    config: _Config
    headers: dict[str, str]
    params: dict[str, str]
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    reason: str
    headers: dict[str, str]
    content: bytes
    charset: str | None
    content_type: str


#: the secrets of the request this task is sending, for :class:`_ScrubSecrets`
_SECRETS_IN_FLIGHT: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "flowmonkey_http_secrets", default=())
#: the loggers that write a request's URL (httpx, at INFO) or a response's headers
#: (httpcore, at DEBUG) while this handler sends; a logger's filter applies to its
#: own records only, so each is named
_CHATTY_LOGGERS = ("httpx", "httpcore.http11", "httpcore.http2", "httpcore.connection")


class _ScrubSecrets(logging.Filter):
    """Replaces the secrets of the request being sent (in this task) in what httpx and
    httpcore log about it: ``HTTP Request: GET https://...?key=<secret>`` otherwise
    reaches any log that takes httpx's INFO lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _SECRETS_IN_FLIGHT.get()
        if secrets:
            message = record.getMessage()
            scrubbed = _scrub_text(message, secrets)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


def _install_log_scrubber() -> None:
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubSecrets) for f in logger.filters):
            logger.addFilter(_ScrubSecrets())


_install_log_scrubber()


def _env_allows_private() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")


class HttpHandler:
    """Make an HTTP request (type ``http``)."""

    metadata = HandlerMetadata(
        type="http",
        name="HTTP request",
        description="Call an HTTP(S) endpoint; public addresses only unless the operator "
                    "allows private ones.",
        category="external",
        config_schema=CONFIG_SCHEMA,
    )

    def __init__(
        self,
        allow_private: bool = False,
        client: httpx.AsyncClient | None = None,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_redirects: int = 10,
    ) -> None:
        """``resolver`` resolves host names and ``network_backend`` opens the sockets
        (to already checked addresses); both are for tests. A ``client`` passed in is
        used as it is: its transport decides where connections go, so the guard on
        resolved names holds only if it is a
        :class:`~flowmonkey.handlers.safe_transport.GuardedTransport`."""
        # Without a client one is made per request: an AsyncClient's pool belongs to
        # the event loop that opened it, and handlers outlive loops in tests and CLIs.
        self._allow_private = allow_private
        self._client = client
        self._resolve = resolver or system_resolver
        self._network_backend = network_backend
        self._max_response_bytes = max_response_bytes
        self._max_redirects = max_redirects
        # Loading the CA bundle costs milliseconds; one context serves every request
        # (an SSLContext is not tied to an event loop).
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()

    async def execute(self, params: HandlerParams) -> StepResult:
        started = time.monotonic()
        try:
            config = _parse_config(params.config)
            request = await _resolve_secrets(config, params.vault)
        except ConfigError as exc:
            return Result.failure("INPUT_ERROR", f"http: {exc}")
        allow_private = self._allow_private or _env_allows_private()
        last_error = "Unknown error"
        for attempt in range(1, config.attempts + 1):
            try:
                response = await _unless_aborted(
                    self._attempt(request, allow_private), params.abort)
            except _Aborted:
                return Result.failure("ABORTED", "Request was cancelled")
            except _NotAllowed as exc:
                return Result.failure("URL_NOT_ALLOWED", str(exc), details={"url": config.url})
            except AddressNotAllowed as exc:
                return Result.failure("URL_NOT_ALLOWED", f"{exc}; {_PRIVATE_HINT}",
                                      details={"url": config.url})
            except _TooLarge:
                return Result.failure(
                    "RESPONSE_TOO_LARGE",
                    f"response body is larger than {self._max_response_bytes} bytes",
                    details={"limit": self._max_response_bytes})
            except (httpx.RequestError, OSError, TimeoutError) as exc:
                last_error = _scrub_text(_describe_transport_error(exc, config),
                                         request.secrets)
                if attempt < config.attempts:
                    delay_s = min(100 * 2 ** (attempt - 1), 5000) / 1000
                    if await _sleep_unless_aborted(delay_s, params.abort):
                        return Result.failure("ABORTED", "Request was cancelled")
                continue
            return _to_result(_scrub_response(response, request.secrets), attempt, started)
        return Result.failure("REQUEST_FAILED", last_error,
                              details={"attempts": config.attempts})

    async def _attempt(self, request: _Request, allow_private: bool) -> _Response:
        # this task's context only: the log filter scrubs this request's secrets
        _SECRETS_IN_FLIGHT.set(request.secrets)
        async with asyncio.timeout(request.config.timeout_ms / 1000):
            if self._client is not None:
                return await self._exchange(self._client, request, allow_private)
            transport = GuardedTransport(
                self._resolve, allow_private=allow_private,
                network_backend=self._network_backend, verify=self._tls_context())
            async with httpx.AsyncClient(transport=transport) as client:
                return await self._exchange(client, request, allow_private)

    def _tls_context(self) -> ssl.SSLContext:
        with self._ssl_lock:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            return self._ssl_context

    async def _exchange(
        self, client: httpx.AsyncClient, prepared: _Request, allow_private: bool
    ) -> _Response:
        config = prepared.config
        headers = dict(prepared.headers)
        content: str | bytes | None = None
        if isinstance(config.body, str):
            content = config.body
        elif config.body is not None:
            content = orjson.dumps(config.body)
            if not any(name.lower() == "content-type" for name in headers):
                headers["content-type"] = "application/json"
        url = httpx.URL(config.url)
        if prepared.params:
            # added to the URL's own query (build_request's params= would replace it)
            url = url.copy_merge_params(prepared.params)
        request = client.build_request(config.method, url, headers=headers,
                                       content=content, timeout=config.timeout_ms / 1000)
        hops = 0
        while True:
            await self._guard(request.url, allow_private)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                if response.next_request is not None and hops < self._max_redirects:
                    request = response.next_request
                    hops += 1
                    continue
                content = await self._read(response)
            finally:
                await response.aclose()
            return _Response(
                status=response.status_code, reason=response.reason_phrase,
                headers={k.lower(): v for k, v in response.headers.items()},
                content=content, charset=response.charset_encoding,
                content_type=response.headers.get("content-type", ""))

    async def _read(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_response_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _guard(self, url: httpx.URL, allow_private: bool) -> None:
        """Refuse what can be refused from the URL alone, before anything is sent.

        Names are not resolved here: a second lookup could answer differently from the
        one the connection uses. The transport checks what a name resolves to."""
        if url.scheme not in ("http", "https"):
            raise _NotAllowed(f"URL scheme {url.scheme!r} is not allowed; use http or https")
        if allow_private:
            return
        host = url.host
        if not host:
            raise _NotAllowed("URL has no host")
        lowered = host.lower().rstrip(".")
        if lowered == "localhost" or lowered.endswith(".localhost"):
            raise _NotAllowed(f"host {host!r} is a loopback name; {_PRIVATE_HINT}")
        address = parse_address(host)
        if address is not None and not is_public_address(address):
            raise _NotAllowed(f"host {host!r} is a non-public address (private, loopback, "
                              f"link-local, multicast or reserved); {_PRIVATE_HINT}")


async def _resolve_secrets(config: _Config, vault: VaultProvider | None) -> _Request:
    """``config`` with each ``{"$vault": name}`` replaced by the secret's value.
    Raises ConfigError naming the field and the secret, never a value."""
    secrets: list[str] = []

    async def resolve(field: str, values: Mapping[str, _Value]) -> dict[str, str]:
        resolved: dict[str, str] = {}
        for name, value in values.items():
            if isinstance(value, str):
                resolved[name] = value
                continue
            where = f"config.{field}[{name!r}] names vault secret {value.name!r}"
            if vault is None:
                raise ConfigError(f"{where}, but the engine has no vault "
                                  "(Engine(vault=...))")
            try:
                secret = await vault.get_secret(value.name)
            except Exception as exc:  # a vault's own failure: say which, not its text
                raise ConfigError(f"{where}, and the vault failed to read it "
                                  f"({type(exc).__name__})") from None
            if secret is None:
                raise ConfigError(f"{where}, which the vault does not have")
            if not isinstance(secret, str):
                raise ConfigError(f"{where}, and the vault's value is not text")
            resolved[name] = secret
            if secret:
                secrets.append(secret)
        return resolved

    headers = await resolve("headers", config.headers)
    params = await resolve("params", config.params)
    # each secret as it is sent and as a URL or a log writes it (percent-encoded),
    # longest first, so a form that contains another is replaced whole
    forms = {form for secret in secrets for form in _written_forms(secret)}
    return _Request(config, headers, params, tuple(sorted(forms, key=len, reverse=True)))


def _written_forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret),
             str(httpx.QueryParams({"k": secret}))[2:]}
    return {form for form in forms if form}


def _scrub_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _scrub_response(response: _Response, secrets: tuple[str, ...]) -> _Response:
    """The response with every resolved secret it echoes replaced: it becomes the
    step's output (or error), which the log and the projection keep."""
    if not secrets:
        return response
    content = response.content
    for secret in secrets:
        content = content.replace(secret.encode("utf-8"), REDACTED.encode())
    return dataclasses.replace(
        response, content=content, reason=_scrub_text(response.reason, secrets),
        headers={k: _scrub_text(v, secrets) for k, v in response.headers.items()})


def _to_result(response: _Response, attempt: int, started: float) -> StepResult:
    text = _decode(response.content, response.charset)
    if not 200 <= response.status < 300:
        return Result.failure(
            "HTTP_ERROR", f"HTTP {response.status} {response.reason}".rstrip(),
            details={"status": response.status, "statusText": response.reason,
                     "attempt": attempt, "body": text[:_ERROR_BODY_CHARS]})
    return Result.success({
        "status": response.status,
        "statusText": response.reason,
        "headers": response.headers,
        "body": text,
        "json": _parse_json(response.content, response.content_type),
        "durationMs": int((time.monotonic() - started) * 1000),
    })


def _decode(content: bytes, charset: str | None) -> str:
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def _parse_json(content: bytes, content_type: str) -> Any:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not content or not (media_type == "application/json" or media_type.endswith("+json")):
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _describe_transport_error(exc: BaseException, config: _Config) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"Request timed out after {config.timeout_ms} ms"
    return str(exc) or type(exc).__name__


async def _unless_aborted(work: Awaitable[T], abort: asyncio.Event) -> T:
    """``await work``, but give up (cancelling it) as soon as ``abort`` is set."""
    if abort.is_set():
        if asyncio.iscoroutine(work):
            work.close()
        raise _Aborted
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(abort.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise _Aborted


async def _sleep_unless_aborted(seconds: float, abort: asyncio.Event) -> bool:
    """Sleep; True when ``abort`` was set first."""
    try:
        await asyncio.wait_for(abort.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def _parse_config(config: Mapping[str, Any]) -> _Config:
    url = config.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("config.url is required (an http or https URL)")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"config.url is not a valid URL: {exc}") from None
    method = config.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ConfigError(f"config.method must be one of {', '.join(METHODS)}")
    return _Config(
        url=url.strip(), method=method.upper(), headers=_values(config, "headers"),
        params=_values(config, "params"), body=config.get("body"),
        timeout_ms=int_in(config, "timeout", 30000, 100, 300000),
        attempts=max(1, int_in(config, "retries", 3, 0, 10)),
    )



def _values(config: Mapping[str, Any], field: str) -> dict[str, _Value]:
    """``config[field]``: names to texts (numbers and booleans written out) or vault
    references. Values are never echoed in errors: they can hold secrets."""
    raw = config.get(field) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config.{field} must be an object of names to values")
    values: dict[str, _Value] = {}
    for name, value in raw.items():
        if isinstance(value, bool):
            values[str(name)] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[str(name)] = str(value)
        elif (isinstance(value, Mapping) and set(value) == {VAULT_KEY}
              and isinstance(value[VAULT_KEY], str) and value[VAULT_KEY]):
            values[str(name)] = _VaultRef(value[VAULT_KEY])
        else:
            raise ConfigError(f"config.{field}[{name!r}] must be a string, a number or "
                              f'{{"{VAULT_KEY}": "secret name"}}')
    return values
