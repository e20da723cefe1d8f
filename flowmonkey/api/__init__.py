"""The HTTP API (FastAPI): ``create_app(engine, auth)``; served by ``flowmonkey api``."""

from flowmonkey.api.app import create_app
from flowmonkey.api.auth import ApiAuth, Principal

__all__ = ["ApiAuth", "Principal", "create_app"]
