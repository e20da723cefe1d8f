"""The explorer: server-rendered pages under ``/ui`` over the same engine as the API.

:func:`mount` adds it to an app (``create_app`` does): the page routers of
:mod:`.pages`, the packaged static files at ``/ui/static``, HTML error pages for ``/ui``
paths, and the session signer (:mod:`.session`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from flowmonkey.api.auth import ApiAuth

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["STATIC_DIR", "mount"]


def mount(app: FastAPI, auth: ApiAuth | None, secret: str | None) -> None:
    """Serve the explorer from ``app``. ``secret`` signs its session cookies (None: a
    random one, so sessions end when the process does and do not span processes)."""
    from flowmonkey.api.ui import errors, pages
    from flowmonkey.api.ui.session import Sessions

    app.state.ui_sessions = Sessions(auth, secret)
    errors.install(app)
    for router in pages.ROUTERS:
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
