"""The FastAPI application over an :class:`~flowmonkey.engine.Engine`.

``create_app(engine, auth)`` builds it; the caller starts and stops the engine (the
``flowmonkey api`` command does, around the server). With ``auth=None`` every request
acts as an admin: that is for local development (``flowmonkey api --no-auth``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Depends, FastAPI

from flowmonkey.api import (
    metrics,
    routes_executions,
    routes_flows,
    routes_forms,
    routes_health,
    routes_hooks,
    routes_inbound,
    routes_jobs,
    routes_tables,
    routes_triggers,
    ui,
)
from flowmonkey.api.auth import ApiAuth, principal_without_auth
from flowmonkey.api.body_limit import BodyLimit
from flowmonkey.api.deps import FlowRefresher, refuse_nul
from flowmonkey.api.docs_page import install_docs
from flowmonkey.api.errors import install_error_handlers
from flowmonkey.api.form_submissions import FormSubmissions
from flowmonkey.api.inbound_email import InboundEmails, InboundEmailSettings
from flowmonkey.api.webhooks import Webhooks
from flowmonkey.engine import Engine
from flowmonkey.forms.captcha import CaptchaVerifier, HttpCaptchaVerifier
from flowmonkey.model.limits import DEFAULT_MAX_TOTAL_SIZE_BYTES

DESCRIPTION = """\
Start, resume, cancel and query FlowMonkey executions; query their jobs; list, pause
and resume triggers; receive webhooks and replies to emails; take public form
submissions.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>` (webhooks,
`POST /v1/hooks/{triggerId}`, authenticate by their signature instead, unless their
trigger requires a key; so do inbound emails, `POST /v1/inbound/email`; form
submissions, `POST /v1/forms/{formId}/submissions`, are public). A key bound to
a tenant acts for that tenant only; an admin key acts for every tenant, or for the one
named by `X-Tenant-Id`. Errors are `{"error": {"code": ..., "message": ...}}`.

Conventions: keys are camelCase (event `data` too); the user's values (contexts, step
inputs and outputs, resume data, metadata, row values, error details) keep their keys as
given. Every point in time is an ISO-8601 UTC string with milliseconds and `Z`
(`2026-01-31T12:00:00.123Z`); durations are milliseconds in fields named `...Ms`.
"""


#: the largest request body read (413 beyond): an execution's whole context may reach
#: the default total of 10 MiB, plus room for the rest of the request
MAX_BODY_BYTES = DEFAULT_MAX_TOTAL_SIZE_BYTES + 64 * 1024


def create_app(engine: Engine, auth: ApiAuth | None, *,
               max_body_bytes: int = MAX_BODY_BYTES,
               trusted_proxies: Sequence[str] = (),
               captcha: CaptchaVerifier | None = None,
               inbound_email: InboundEmailSettings | None = None,
               ui_secret: str | None = None) -> FastAPI:
    """``trusted_proxies``: CIDRs of the proxies whose ``X-Forwarded-For`` names a
    form submitter's address (settings: ``FLOWMONKEY_TRUSTED_PROXIES``); ``captcha``:
    what checks forms' captchas (default: the providers' verify calls);
    ``inbound_email``: how replies to ``email-reply`` steps are received (None: the
    inbound email endpoint is off; ``flowmonkey api`` reads them from the environment);
    ``ui_secret``: signs the explorer's session cookies (settings:
    ``FLOWMONKEY_UI_SECRET``; None: a random one per process)."""
    from flowmonkey import __version__

    # the docs page is our own, with its assets shipped in the package (docs_page.py)
    app = FastAPI(title="FlowMonkey", version=__version__, description=DESCRIPTION,
                  dependencies=[Depends(refuse_nul)], docs_url=None, redoc_url=None)
    install_docs(app)
    # without a bound a client could make the server buffer and parse any amount
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes,
                       max_depth=engine.options.context_limits.max_depth)
    # added last, so outermost: it counts the requests the body limit refuses too
    app.add_middleware(metrics.RequestMetrics, metrics=engine.metrics)
    app.state.engine = engine
    app.state.flow_refresher = FlowRefresher(engine)
    app.state.webhooks = Webhooks(engine)
    app.state.form_submissions = FormSubmissions(
        engine, captcha if captcha is not None else HttpCaptchaVerifier(), trusted_proxies)
    app.state.inbound_emails = InboundEmails(engine, inbound_email or InboundEmailSettings())
    app.state.authenticate = auth.principal if auth is not None else principal_without_auth
    install_error_handlers(app)
    app.include_router(routes_health.router)
    app.include_router(metrics.router)
    app.include_router(routes_executions.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_flows.router)
    app.include_router(routes_tables.router)
    app.include_router(routes_triggers.router)
    # no API key: a webhook authenticates itself by its signature (routes_hooks.py)
    app.include_router(routes_hooks.router)
    # submissions need no API key: a public form's defences are its own (routes_forms.py)
    app.include_router(routes_forms.router)
    # no API key either: an inbound email is signed (inbound_email.py)
    app.include_router(routes_inbound.router)
    # the explorer (/ui): HTML pages over the same engine, with its own login
    ui.mount(app, auth, ui_secret)
    return app
