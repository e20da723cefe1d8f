"""``flowmonkey api``: serve the HTTP API (:mod:`flowmonkey.api`) over an Engine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from flowmonkey.cli.common import (
    EXIT_FAILED,
    Bundle,
    CliError,
    engine_handlers,
    load_apps,
)
from flowmonkey.cli.options import (
    add_app_options,
    add_command,
    add_log_format_option,
    add_private_http_option,
    add_schema_option,
    add_settings_options,
)
from flowmonkey.cli.service import configure_logging, run_until_stopped, say, stop_on_signals
from flowmonkey.cli.settings import check_schema, scrub, settings_from_args, start_engine
from flowmonkey.settings import ENV_API_KEYS, ENV_UI_SECRET, SettingsError, vault_from_env

if TYPE_CHECKING:
    import uvicorn

    from flowmonkey.api.auth import ApiKey
    from flowmonkey.api.inbound_email import InboundEmailSettings
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.engine import Engine
    from flowmonkey.settings import Settings

log = logging.getLogger("flowmonkey.api")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_LOOPBACK = ("127.0.0.1", "::1", "localhost")

EPILOG = f"""\
Authentication: every endpoint but /health, /metrics, webhooks and form submissions
needs an API key, sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys come from {ENV_API_KEYS},
KEY=TENANT pairs separated by commas; a key bound to a tenant acts for that tenant
only (another tenant's executions answer 404), and a tenant of `*` makes an admin key,
which sees every tenant and may act for one named by an `X-Tenant-Id` header. Without
keys the command refuses to start, unless --no-auth (local development only: anyone
who can reach the port can do anything).

What it runs on:
  Kafka (FLOWMONKEY_KAFKA_BOOTSTRAP): an engine without processors. Commands go to the
    commands topic and the processors (`flowmonkey processor`) answer them; flows come
    from the flows topic (start a processor first), plus any --app/--flows-dir. The
    engine applies the events to the projection itself, because that is how it sees
    the answers to its commands: with FLOWMONKEY_POSTGRES_DSN that is PostgreSQL,
    shared safely with `flowmonkey projector` (events apply once by seq, offsets only
    move forward), so what a write returned is already readable; without it, an
    in-memory projection rebuilt from the events topic at start (for trying out).
  no Kafka: the embedded engine, processors included, as `flowmonkey dev` runs it
    (FLOWMONKEY_DATA_DIR / --data-dir for a durable log, else in memory).

Public forms: POST /v1/forms/ID/submissions needs no key (JSON, urlencoded or
multipart without files; captcha, honeypot, rate limits and duplicates per form). The
submitter's address is the connection's, or X-Forwarded-For's behind the proxies in
FLOWMONKEY_TRUSTED_PROXIES (CIDRs); FLOWMONKEY_CAPTCHA_VERIFY_URLS points captcha
providers elsewhere; captcha secrets come from the vault (FLOWMONKEY_SECRET_*).

Endpoints: GET /health; GET /metrics (Prometheus text, no ids in it);
POST /v1/executions; GET /v1/executions[?status=&flowId=&parentExecutionId=&limit=
&cursor=]; GET /v1/executions/ID[/events|/state?seq=N];
POST /v1/executions/ID/resume|cancel; GET /v1/flows[/ID]; GET /v1/tables[/ID/rows];
GET /v1/forms[/ID[/submissions[/SUBMISSION]]]; POST /v1/forms/ID/submissions;
POST /v1/inbound/email (replies to email-reply steps: no API key, signed with the
vault secret FLOWMONKEY_INBOUND_EMAIL_SECRET names; off while it is unset);
GET /v1/triggers[/ID[/next]]; POST /v1/triggers/ID/pause|resume; POST /v1/hooks/ID
(webhooks: signed, no API key unless the trigger requires one);
OpenAPI at /openapi.json, interactive docs at /docs.

examples:
  export {ENV_API_KEYS}="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')=*"
  flowmonkey api --app myapp.flows:app --port 8080
  flowmonkey api --no-auth --flows-dir examples/flows                # local development
  FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092 FLOWMONKEY_POSTGRES_DSN=postgresql://… \\
      flowmonkey api --host 0.0.0.0

exit codes: 0 stopped by SIGINT/SIGTERM, 1 Kafka, PostgreSQL or the port could not be
            used, or the engine failed, 2 bad input (no keys, no flows, a bad option)
"""


def register_api(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "api", help="serve the HTTP API",
        description="Serve the HTTP API (start, resume, cancel and query executions; "
                    "flows; table rows; health; OpenAPI) until SIGINT or SIGTERM.",
        epilog=EPILOG)
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 for "
                             "every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--no-auth", action="store_true",
                        help=f"serve without API keys, ignoring {ENV_API_KEYS}: for local "
                             "development only")
    parser.add_argument("--http", choices=("auto", "httptools", "h11"), default="auto",
                        help="the HTTP/1.1 parser: httptools (C, less CPU per request) or "
                             "h11 (pure Python); default auto: httptools when installed")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop (default asyncio's own); uvloop, when "
                             "installed, measured no less CPU per request "
                             "(docs/performance.md)")
    add_app_options(parser)
    add_private_http_option(parser, when="without Kafka")
    add_schema_option(parser)
    add_settings_options(parser)
    add_log_format_option(parser)
    parser.set_defaults(func=run_api)


def run_api(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    check_schema(args.schema)
    if not 1 <= args.port <= 65535:
        raise CliError(f"--port must be from 1 to 65535, not {args.port}")
    keys = _keys(args.no_auth)
    inbound_email = _inbound_email()
    ui_secret = ui_secret_from_env()
    bundle = load_apps(args.app, args.flows_dir)
    if settings.log_kind != "kafka" and not bundle.flows:
        raise CliError("no flows to serve: give --app MODULE (with `flows` and `handlers`) "
                       "or --flows-dir DIR",
                       hint="on Kafka the flows come from the flows topic instead: set "
                            "FLOWMONKEY_KAFKA_BOOTSTRAP")
    configure_logging(args, settings)
    if args.no_auth:
        exposed = "" if args.host in _LOOPBACK else \
            f"; it listens on {args.host}, so anyone who can reach it can do anything"
        log.warning("serving without authentication (--no-auth), for local development "
                    "only%s", exposed)
    http, loop = _http_parser(args.http), _event_loop(args.loop)
    with asyncio.Runner(loop_factory=loop) as runner:
        return runner.run(_Api(args, settings, bundle, keys, inbound_email, http,
                                     ui_secret).run())


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _http_parser(choice: str) -> str:
    """uvicorn's ``http`` for ``--http``: httptools, a C parser, when installed (auto)."""
    if choice == "httptools" and not _installed("httptools"):
        raise CliError("--http httptools: the httptools package is not installed",
                       hint="install it (pip install httptools) or use --http h11")
    return "h11" if choice == "h11" or not _installed("httptools") else "httptools"


def _event_loop(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``--loop`` (None: asyncio's own). uvloop is not a
    dependency: it measured no gain here, but what the engine runs (asyncpg, aiokafka,
    uvicorn) works on it, so a deployment may try it."""
    if choice == "asyncio":
        return None
    if not _installed("uvloop"):
        raise CliError("--loop uvloop: the uvloop package is not installed",
                       hint="install it (pip install uvloop) or leave out --loop")
    module = importlib.import_module("uvloop")
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def _keys(no_auth: bool) -> tuple[ApiKey, ...]:
    from flowmonkey.api.auth import api_keys_from_env  # FastAPI only for this command

    try:
        keys = api_keys_from_env()
    except SettingsError as exc:
        if no_auth:
            return ()
        raise CliError(str(exc), hint=f"fix {ENV_API_KEYS}, or pass --no-auth for local "
                                      "development") from None
    if not keys and not no_auth:
        raise CliError(
            f"no API keys: set {ENV_API_KEYS} (KEY=TENANT pairs, `*` for an admin key), "
            "or pass --no-auth for local development",
            hint=f"e.g. export {ENV_API_KEYS}=\"$(python -c 'import secrets; "
                 "print(secrets.token_urlsafe(32))')=*\"")
    return () if no_auth else keys


#: a shorter explorer secret is refused: it signs every session cookie
MIN_UI_SECRET_LENGTH = 16


def ui_secret_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """``FLOWMONKEY_UI_SECRET``: signs the explorer's session cookies (unset: a random
    secret per process, so sessions end at a restart and do not span processes)."""
    value = (os.environ if env is None else env).get(ENV_UI_SECRET, "").strip()
    if not value:
        return None
    if len(value) < MIN_UI_SECRET_LENGTH:
        raise CliError(f"{ENV_UI_SECRET} has {len(value)} characters, fewer than "
                       f"{MIN_UI_SECRET_LENGTH}",
                       hint="make one with: python -c 'import secrets; "
                            "print(secrets.token_urlsafe(32))'")
    return value


def _inbound_email() -> InboundEmailSettings:
    from flowmonkey.api.inbound_email import InboundEmailSettings

    try:
        return InboundEmailSettings.from_env()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def _say(text: str) -> None:
    say("api", text)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts, so a taken port fails fast
    with the system's reason."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                       exit_code=EXIT_FAILED,
                       hint="another process may use the port: choose one with --port") \
            from None
    sock.setblocking(False)
    return sock


class _Api:
    def __init__(self, args: argparse.Namespace, settings: Settings, bundle: Bundle,
                 keys: tuple[ApiKey, ...], inbound_email: InboundEmailSettings,
                 http: str, ui_secret: str | None = None) -> None:
        self.inbound_email = inbound_email
        self.http = http
        self.ui_secret = ui_secret
        self.args = args
        self.settings = settings
        self.bundle = bundle
        self.keys = keys
        self.stop = asyncio.Event()

    def engine(self) -> Engine:
        from flowmonkey.engine import Engine

        settings, args = self.settings, self.args
        handlers = engine_handlers(self.bundle, allow_private_http=args.allow_private_http)
        kafka = settings.log_kind == "kafka"
        return Engine(
            flows=self.bundle.flows, handlers=handlers, tables=self.bundle.tables,
            triggers=self.bundle.triggers, forms=self.bundle.forms,
            vault=vault_from_env(),
            log=settings.make_log(client_id="flowmonkey-api"),
            projection=settings.make_projection(schema=args.schema),
            # on Kafka the processors are `flowmonkey processor`'s job
            run_processors=not kafka)

    async def run(self) -> int:
        sock = _listen(self.args.host, self.args.port)
        engine = self.engine()
        where = self.settings.describe_log()
        _say(f"{where} -> {self.settings.describe_projection(self.args.schema)}"
             + ("" if engine.run_processors else " (no processors here)"))
        try:
            await start_engine(engine, self.settings)
        except BaseException:
            sock.close()
            raise
        try:
            return await self._serve(engine, sock)
        finally:
            _say("stopping...")
            await engine.stop()
            _say("stopped")

    async def _serve(self, engine: Engine, sock: socket.socket) -> int:
        import uvicorn

        from flowmonkey.api import ApiAuth, create_app
        from flowmonkey.api.routes_health import unhealthy_reason
        from flowmonkey.forms.captcha import HttpCaptchaVerifier

        settings = self.settings
        app = create_app(engine, ApiAuth(self.keys) if self.keys else None,
                         trusted_proxies=settings.trusted_proxies,
                         captcha=HttpCaptchaVerifier(dict(settings.captcha_verify_urls)),
                         inbound_email=self.inbound_email,
                         ui_secret=self.ui_secret)
        debug = bool(getattr(self.args, "debug", False))
        config = uvicorn.Config(app, log_level="info" if debug else "warning",
                                access_log=debug, lifespan="off", http=self.http,
                                timeout_graceful_shutdown=10)
        server = _server(config)
        stop_on_signals(self.stop)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="fm-api-server")
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        auth = f"{len(self.keys)} API keys" if self.keys else "NO authentication (--no-auth)"
        loop = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") \
            else "asyncio"
        _say(f"listening on http://{shown}:{port} ({auth}; {self.http}, {loop}); docs at "
             f"/docs; explorer at http://{shown}:{port}/ui; Ctrl-C to stop")

        def failure() -> str | None:
            if serving.done():
                error = None if serving.cancelled() else serving.exception()
                return f"the HTTP server stopped: {error!r}" if error else \
                    "the HTTP server stopped"
            reason = unhealthy_reason(engine)
            error = engine.processor_failure()
            if reason is None:
                return None
            detail = f": {error}" if error is not None else ""
            return scrub(reason + detail, self.settings.postgres_dsn)

        try:
            return await run_until_stopped(self.stop, 3600.0, failure=failure)
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await serving
            sock.close()


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """A ``uvicorn.Server`` without its own signal handling: SIGINT and SIGTERM set the
    command's stop event instead (uvicorn would raise the signal again once stopped,
    ending the process by the signal rather than with exit code 0)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)
