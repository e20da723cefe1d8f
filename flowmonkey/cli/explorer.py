"""The explorer served next to a local engine: ``flowmonkey dev --ui`` and ``flowmonkey
demo --ui``.

The whole HTTP API and its ``/ui`` pages run in the command's own process and event
loop, on the loopback address only and without API keys (as ``flowmonkey api
--no-auth``): for looking at local data, never for serving others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowmonkey.engine import Engine

UI_HOST = "127.0.0.1"
DEFAULT_UI_PORT = 8080


def add_ui_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument("--ui", action="store_true",
                        help=f"serve the explorer (and the HTTP API) on {what}, at "
                             f"http://{UI_HOST}:PORT/ui, local only and without login")
    parser.add_argument("--ui-port", metavar="PORT", type=int, default=DEFAULT_UI_PORT,
                        help=f"the explorer's port (default {DEFAULT_UI_PORT})")


def check_ui_port(port: int) -> None:
    from flowmonkey.cli.common import CliError

    if not 1 <= port <= 65535:
        raise CliError(f"--ui-port must be from 1 to 65535, not {port}")


@contextlib.asynccontextmanager
async def serve_explorer(engine: Engine, port: int) -> AsyncIterator[str]:
    """Serve ``engine``'s API and explorer until the block ends; yields the explorer's
    URL. The port is bound before anything is served, so a taken one fails at once."""
    import uvicorn

    from flowmonkey.api import create_app
    from flowmonkey.cli.api import _listen, _server

    sock = _listen(UI_HOST, port)
    config = uvicorn.Config(create_app(engine, None), log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5)
    server = _server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="fm-explorer")
    try:
        bound = sock.getsockname()[1]
        yield f"http://{UI_HOST}:{bound}/ui"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await serving
        sock.close()
