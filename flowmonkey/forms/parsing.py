"""A submission's body as a mapping of fields, from JSON, ``application/x-www-form-
urlencoded`` or ``multipart/form-data`` (without files), within :class:`ParseBounds`.

Everything refused is a :class:`BodyError`: a media type other than these three, a
multipart part carrying a file (415), text that is not UTF-8, JSON that is not an
object, a malformed pair or part, and anything past the bounds (400). The body has
been read already, within the form's ``maxBodyBytes``; nothing here streams.

Form encodings carry strings only: a field given once is a string, a field given
more than once a list of its strings. :func:`coerce_form_values` turns a form-encoded
string into the number or boolean the form's schema asks for, where it reads as one
(what does not stays a string, for the schema to report).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from python_multipart.multipart import MultipartParser, parse_options_header

from flowmonkey.forms.bounds import BodyError, ParseBounds, check_bounds, invalid

JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MEDIA_TYPES = (JSON, URLENCODED, MULTIPART)

#: headers a multipart part may have; more is not a form's doing
_MAX_PART_HEADERS = 8
_UTF8 = frozenset({"utf-8", "utf8"})


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """The lower-cased media type and its parameters (``charset``, ``boundary``)."""
    kind, options = parse_options_header(content_type or "")
    params = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in options.items()}
    return kind.decode("latin-1").strip().lower(), params


def parse_body(content_type: str | None, body: bytes,
               bounds: ParseBounds | None = None) -> tuple[dict[str, Any], bool]:
    """The fields of ``body`` and whether they came form-encoded (strings only)."""
    bounds = bounds or ParseBounds()
    kind, params = media_type(content_type)
    charset = params.get("charset", "utf-8").strip().lower()
    if kind not in MEDIA_TYPES:
        raise BodyError(415, "UNSUPPORTED_MEDIA_TYPE",
                        f"send the submission as {', '.join(MEDIA_TYPES)}")
    if charset not in _UTF8:
        raise BodyError(415, "UNSUPPORTED_MEDIA_TYPE", "the only charset taken is utf-8")
    if kind == JSON:
        data = parse_json(body)
    elif kind == URLENCODED:
        data = parse_urlencoded(body, bounds)
    else:
        data = parse_multipart(body, params.get("boundary"), bounds)
    check_bounds(data, bounds)
    return data, kind != JSON


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson's message names the position and the fault, not the content
        raise invalid(f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise invalid("the body must be a JSON object of the form's fields")
    return value


def parse_urlencoded(body: bytes, bounds: ParseBounds) -> dict[str, Any]:
    text = _utf8(body, "the body")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True,
                          errors="strict", max_num_fields=bounds.max_values)
    except UnicodeDecodeError:
        raise invalid("a percent-encoded value is not UTF-8 text") from None
    except ValueError as exc:
        message = str(exc)
        if "Max number of fields" in message:
            raise invalid(f"the submission holds more than {bounds.max_values} values") \
                from None
        raise invalid("the body is not a valid urlencoded form (name=value pairs "
                      "joined by &)") from None
    return _fields(pairs, bounds)


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(f"{what} is not UTF-8 text") from None


def _fields(pairs: list[tuple[str, str]], bounds: ParseBounds) -> dict[str, Any]:
    """Pairs as fields: a repeated name's values become a list."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if len(name) > bounds.max_key_chars:  # before it becomes a key of anything
            raise invalid(f"a key is longer than {bounds.max_key_chars} characters")
        if name not in fields:
            fields[name] = value
        elif isinstance(fields[name], list):
            fields[name].append(value)
        else:
            fields[name] = [fields[name], value]
    return fields


class _Parts:
    """The callbacks of python-multipart's parser: each part's headers and data."""

    def __init__(self, bounds: ParseBounds) -> None:
        self.bounds = bounds
        self.pairs: list[tuple[str, str]] = []
        self.headers: dict[str, bytes] = {}
        self.header_name = b""
        self.header_value = b""
        self.data = bytearray()
        self.name: str | None = None

    def on_part_begin(self) -> None:
        self.headers = {}
        self.data = bytearray()
        self.name = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if len(self.headers) >= _MAX_PART_HEADERS:
            raise invalid(f"a multipart part has more than {_MAX_PART_HEADERS} headers")
        self.headers[self.header_name.decode("latin-1").strip().lower()] = self.header_value
        self.header_name = b""
        self.header_value = b""

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get("content-disposition"))
        if disposition.lower() != b"form-data" or b"name" not in options:
            raise invalid("a multipart part is not form-data with a name")
        if b"filename" in options or b"filename*" in options:
            raise BodyError(415, "FILES_NOT_ACCEPTED", "a form takes no files")
        kind, params = parse_options_header(self.headers.get("content-type"))
        if kind and kind.lower() != b"text/plain":
            # a value typed as anything but text is a file by another name
            raise BodyError(415, "FILES_NOT_ACCEPTED", "a form takes no files: each "
                            "part must be text/plain")
        if params.get(b"charset", b"utf-8").lower() not in (b"utf-8", b"utf8"):
            raise BodyError(415, "UNSUPPORTED_MEDIA_TYPE", "the only charset taken is utf-8")
        self.name = _utf8(options[b"name"], "a part's name")
        if len(self.pairs) >= self.bounds.max_values:
            raise invalid(f"the submission holds more than {self.bounds.max_values} values")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.data += data[start:end]

    def on_part_end(self) -> None:
        assert self.name is not None
        self.pairs.append((self.name, _utf8(bytes(self.data), f"part {self.name[:50]!r}")))


def parse_multipart(body: bytes, boundary: str | None,
                    bounds: ParseBounds) -> dict[str, Any]:
    if not boundary:
        raise invalid("a multipart body needs the boundary in its Content-Type")
    parts = _Parts(bounds)
    callbacks: Any = {name: getattr(parts, name) for name in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished", "on_part_data", "on_part_end")}
    try:
        parser = MultipartParser(boundary.encode("latin-1"), callbacks)
        parser.write(body)
        parser.finalize()
    except BodyError:
        raise
    except Exception:  # the parser's own errors: the body does not follow the format
        raise invalid("the body is not valid multipart/form-data") from None
    return _fields(parts.pairs, bounds)


_TRUE = frozenset({"true", "on", "1", "yes"})
_FALSE = frozenset({"false", "off", "0", "no", ""})


def coerce_form_values(data: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Form-encoded strings as the types the schema's top-level ``properties`` ask
    for (``integer``, ``number``, ``boolean``, and ``array`` of those or of strings,
    a single value becoming a list of one)."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return data
    out = dict(data)
    for name, value in data.items():
        spec = properties.get(name)
        if isinstance(spec, Mapping):
            out[name] = _coerce(value, spec)
    return out


def _types(spec: Mapping[str, Any]) -> set[str]:
    kind = spec.get("type")
    if isinstance(kind, str):
        return {kind}
    return {k for k in kind if isinstance(k, str)} if isinstance(kind, list) else set()


def _coerce(value: Any, spec: Mapping[str, Any]) -> Any:
    types = _types(spec)
    if "array" in types:
        items = spec.get("items")
        values = value if isinstance(value, list) else [value]
        return [_coerce(v, items) for v in values] if isinstance(items, Mapping) else values
    if not isinstance(value, str) or "string" in types:
        return value
    text = value.strip()
    if "integer" in types and _is_integer(text):
        return int(text)
    if "number" in types:
        if _is_integer(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return value
        return number if number == number and abs(number) != float("inf") else value
    if "boolean" in types and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    return value


def _is_integer(text: str) -> bool:
    digits = text[1:] if text[:1] in "+-" else text
    # int() of a huge digit string is quadratic: 20 digits is past any 64-bit value
    return digits.isascii() and digits.isdigit() and len(digits) <= 20
