"""What the explorer's pages beyond executions share: query parameters read into
bounded values (a bad one is a 422 page naming it, as the API's ``VALIDATION_ERROR``),
links that keep a page's filters, and the admin check of admin-only actions.

Pages read their parameters here rather than through FastAPI's ``Query``: a
validation error there is the API's JSON answer, while a page should answer a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, urlencode

from fastapi import Request

from flowmonkey.api.ui.errors import UiError
from flowmonkey.api.ui.session import UiSession
from flowmonkey.model.storable import UnstorableValue, check_body

#: rows per page of a list (the API's default is 100; a page of HTML reads better shorter)
PAGE_SIZE = 50
#: the longest text a filter takes (ids and types are far shorter)
MAX_PARAM_CHARS = 500


def invalid(message: str) -> UiError:
    return UiError(422, "Invalid request", message, code="VALIDATION_ERROR")


def text_param(request: Request, name: str, *,
               max_chars: int = MAX_PARAM_CHARS) -> str | None:
    """A text parameter, stripped; None when absent or empty."""
    value = request.query_params.get(name, "").strip()
    if not value:
        return None
    if len(value) > max_chars:
        raise invalid(f"{name}: at most {max_chars} characters")
    return value


def choice_param(request: Request, name: str, allowed: Iterable[str]) -> str | None:
    """One of ``allowed``, or None when absent or empty."""
    value = text_param(request, name)
    options = list(allowed)
    if value is not None and value not in options:
        raise invalid(f"{name} must be one of {', '.join(options)}")
    return value


def bool_param(request: Request, name: str) -> bool | None:
    """``true`` or ``false``; None when absent or empty (no filter)."""
    value = choice_param(request, name, ("true", "false"))
    return None if value is None else value == "true"


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``; ``default`` when absent or empty."""
    value = text_param(request, name, max_chars=20)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise invalid(f"{name} must be from {low} to {high}")
    return number


Param = str | int | None


def link(path: str, params: Mapping[str, Param | Sequence[str]]) -> str:
    """``path`` with the given parameters (a sequence: the name repeated; the empty and
    None ones left out)."""
    kept: list[tuple[str, str]] = []
    for name, value in params.items():
        values = [value] if value is None or isinstance(value, str | int) else value
        kept += [(name, str(v)) for v in values if v is not None and str(v) != ""]
    return f"{path}?{urlencode(kept)}" if kept else path


def segment(text: str) -> str:
    """``text`` as one path segment of a link (a "/" in an id quoted too)."""
    return quote(text, safe="")


def filters_of(request: Request, names: Iterable[str]) -> dict[str, str]:
    """The page's current filters among ``names`` (to carry into its paging links)."""
    return {name: request.query_params.get(name, "") for name in names}


def require_admin(session: UiSession, what: str) -> None:
    """Refuse a tenant session, as the API refuses a tenant key (403 ``FORBIDDEN``)."""
    if not session.admin:
        raise UiError(403, "Refused", f"{what} takes an admin key", code="FORBIDDEN")


async def form_text(request: Request, name: str, *, max_chars: int) -> str | None:
    """A posted form's text field, stripped (None when absent or empty); refused when
    longer than ``max_chars`` or holding what the log cannot carry (a NUL)."""
    form = await request.form()  # cached: the CSRF check read it already
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if len(value) > max_chars:
        raise invalid(f"{name}: at most {max_chars} characters")
    try:
        check_body({name: value})
    except UnstorableValue as exc:
        raise invalid(f"{exc.path}: {exc.reason}") from None
    return value
