"""Payload conversion in one place: headers, query strings and bodies.

Datakit's wire-facing ports (`request.headers`, `call.body`, ...) carry plain
JSON-like values. These functions turn HTTP messages into such values and
back, with the rules of docs/nodes.md#implicit-nodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_plus

from .errors import BodyDecodeError, CodecError, JSONTooDeep
from .header_policy import writable_headers

HeaderMap = dict[str, str | list[str]]
QueryMap = dict[str, str | list[str | None] | None]

# RFC 9110 §5.1: a field name is a token (ASCII letters, digits, !#$%&'*+-.^_`|~)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: no control characters in a value but HTAB (CR/LF/NUL would
# inject); non-ASCII text is sent as UTF-8, i.e. obs-text, and allowed
_VALUE_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")

# json.dumps() with options builds a new JSONEncoder on every call; this one
# is built once (same output: json.dumps(v, **kw) is JSONEncoder(**kw).encode(v)).
_JSON_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


def _compact_json_encoder(ascii_only: bool) -> Callable[[Any], str]:
    """Compact JSON text, NaN and Infinity refused (ValueError). The C
    encoder is made once and reused: JSONEncoder.encode makes one per call
    (with two Python frames around it), which is most of the cost of
    encoding the small values workflows pass around. Without the cycle
    check: a circular value fails with RecursionError, as a too deep one does."""
    escape = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    make = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False, check_circular=False).encode
    encode = make(None, json.JSONEncoder().default, escape, None, ":", ",", False, False, False)

    def text(value: Any) -> str:
        if isinstance(value, str):
            return escape(value)
        return "".join(encode(value, 0))

    return text


json_text = _compact_json_encoder(ascii_only=False)
"""Compact JSON text of a value (ValueError: NaN, Infinity or a key that is
not a string, number, boolean or null; TypeError: not JSON; RecursionError:
too deep or circular; UnicodeEncodeError later, on a lone surrogate, when
the text is encoded to UTF-8: use `json_text_ascii` then)."""
json_text_ascii = _compact_json_encoder(ascii_only=True)
"""As `json_text`, non-ASCII characters as \\uXXXX escapes (lossless for lone surrogates)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str) -> Any:
    """Standard JSON only: no NaN/Infinity, no out-of-range numbers, UTF-8
    bytes (so lone surrogates cannot sneak in as raw bytes)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        return json.loads(data, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise JSONTooDeep("JSON nested too deeply") from None


# -- headers ---------------------------------------------------------------


def decode_headers(fields: Iterable[tuple[str, str]]) -> HeaderMap:
    """Header fields → map of lowercase name to a string, or a list of
    strings (in order) when the header is repeated."""
    out: HeaderMap = {}
    for name, value in fields:
        key = name.lower()
        prev = out.get(key)
        if prev is None:
            out[key] = value
        elif isinstance(prev, list):
            prev.append(value)
        else:
            out[key] = [prev, value]
    return out


def header_value_strings(name: str, value: Any) -> list[str] | None:
    """The wire values for one header of a map (None: remove the header)."""
    if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
        raise CodecError(f"invalid header name {name!r} (a header name is a token: letters, digits and !#$%&'*+-.^_`|~)")
    if value is None:
        return None
    if type(value) is str and _VALUE_CONTROL.search(value) is None:
        return [value]  # the common case, without the calls below
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        text = _scalar_text(item)
        if text is None:
            raise CodecError(f"invalid value for header {name!r}: {type(item).__name__} (expected string, number, boolean or a list of them)")
        _check_header_text(name, text)
        out.append(text)
    return out


def encode_headers(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A header map → header fields (for building a fresh message). `null`
    entries are dropped."""
    if not isinstance(value, Mapping):
        raise CodecError(f"headers must be a map, got {json_type(value)}")
    fields: list[tuple[str, str]] = []
    for name, item in value.items():
        texts = header_value_strings(name, item)
        if texts:
            fields.extend((name, text) for text in texts)
    return fields


def apply_headers(headers: Any, value: Mapping[str, Any]) -> None:
    """Write a header map onto mitmproxy `Headers`: named headers are set
    (replaced), `null` removes one, the others stay."""
    if not isinstance(value, Mapping):
        raise CodecError(f"headers must be a map, got {json_type(value)}")
    changes = [(name, header_value_strings(name, item)) for name, item in value.items()]
    # all validated before anything is written; then one pass over the
    # fields with mitmproxy's `set_all` semantics per name (an existing
    # field keeps its place and its name's casing, extra old values go, new
    # names are added at the end in map order): a `set_all` per name would
    # rebuild the fields once per header, on every flow
    wire: dict[bytes, tuple[bytes, list[bytes] | None]] = {}
    for name, texts in changes:
        key = name.encode()  # a token: ASCII
        wire[key.lower()] = (key, None if texts is None else [_wire(text) for text in texts])
    if len(wire) < len(changes):  # one header named in two casings: one name at a time, in map order
        for name, texts in changes:
            if texts is None:
                headers.pop(name, None)
            else:
                headers.set_all(name, texts)
        return
    fields = []
    for field in headers.fields:
        change = wire.get(field[0].lower())
        if change is None:
            fields.append(field)
        elif change[1]:  # None (remove) or no values left: the field goes
            fields.append((field[0], change[1].pop(0)))
    for key, values in wire.values():
        if values:
            fields.extend((key, v) for v in values)
    headers.fields = tuple(fields)


def _wire(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # as mitmproxy's Headers encode a str


def _check_header_text(name: str, text: str) -> None:
    bad = _VALUE_CONTROL.search(text)
    if bad is not None:
        kind = "CR, LF or NUL (header injection refused)" if bad.group() in "\r\n\0" else f"control character {bad.group()!r}"
        raise CodecError(f"header {name!r} contains {kind}")


def _scalar_text(item: Any) -> str | None:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, str):
        return item
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        return str(int(item)) if item.is_integer() else repr(item)
    return None


# -- query strings ---------------------------------------------------------


def _unquote(text: str) -> str:
    # escapes that are not UTF-8 (`%FF`) become lone surrogates (U+DCFF), as
    # in `bytes_to_text`; `_quote` turns them back into the same bytes
    return unquote_plus(text, errors="surrogateescape")


def _quote(text: str) -> str:
    try:
        return quote(text, safe="", errors="surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte decodes to (U+D800, ...)
        raise CodecError(f"query text {text!r} contains a lone surrogate that is not an undecodable byte") from None


def decode_query(raw: str) -> QueryMap:
    """A raw query string → map; a key without `=` maps to None, repeated
    keys to a list (in order). `+` is a space; a value that is not UTF-8
    keeps its bytes as lone surrogates (`%FF` → "\udcff" → `%FF`)."""
    out: QueryMap = {}
    if not raw:
        return out
    for part in raw.split("&"):
        if not part:
            continue
        if "=" in part:
            k, v = part.split("=", 1)
            key, val = _unquote(k), _unquote(v)
        else:
            key, val = _unquote(part), None
        if key in out:
            prev = out[key]
            if isinstance(prev, list):
                prev.append(val)
            else:
                out[key] = [prev, val]
        else:
            out[key] = val
    return out


def query_keys(raw: str) -> list[tuple[str, str]]:
    """A raw query string → (decoded key, raw part) pairs, parts untouched."""
    return [(_unquote(part.partition("=")[0]), part) for part in raw.split("&") if part]


def encode_query(value: Mapping[str, Any]) -> str:
    """A query map → query string (without `?`). `null` encodes the bare key,
    lists repeat the key."""
    if not isinstance(value, Mapping):
        raise CodecError(f"query must be a map, got {json_type(value)}")
    parts = []
    for key, item in value.items():
        qkey = _quote(str(key))
        for element in item if isinstance(item, list) else [item]:
            if element is None:
                parts.append(qkey)
                continue
            text = _scalar_text(element)
            if text is None:  # nested structures travel as JSON text
                text = _JSON_COMPACT(element)
            parts.append(f"{qkey}={_quote(text)}")
    return "&".join(parts)


# -- bodies ----------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(content_type: str | None) -> bool:
    mt = media_type(content_type)
    return mt == "application/json" or mt.endswith("+json")


def is_form_type(content_type: str | None) -> bool:
    return media_type(content_type) == "application/x-www-form-urlencoded"


def bytes_to_text(content: bytes) -> str:
    """Lossless bytes → str: bytes that are not UTF-8 survive as surrogates and
    come back unchanged through `text_to_bytes`."""
    return content.decode("utf-8", "surrogateescape")


def text_to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def decode_body(content: bytes | None, content_type: str | None, *, strict: bool = False) -> Any:
    """A body → a JSON value for JSON content types, else a string.

    An empty body is `null`. A JSON content type whose body does not parse is
    an error when `strict` (call responses), otherwise it is passed on as the
    raw string.
    """
    if not content:
        return None
    if is_json_type(content_type):
        try:
            return parse_json(content)
        except JSONTooDeep as e:  # valid JSON we cannot hold: an error, not a string
            raise BodyDecodeError(f"{e} (content type {media_type(content_type)!r})") from None
        except ValueError as e:
            if strict:
                raise BodyDecodeError(f"invalid JSON body with content type {media_type(content_type)!r}: {e}") from None
    return bytes_to_text(content)


class TypedText(str):
    """A string that knows its media type, so a body written from it gets that
    Content-Type when the headers input sets none (Kong: `json_to_xml` output
    reaching a body is `application/xml`). jq and other transformations give
    plain strings again, and the hint is gone with them."""

    content_type: str

    def __new__(cls, text: str, content_type: str) -> TypedText:
        obj = super().__new__(cls, text)
        obj.content_type = content_type
        return obj


def encode_body(value: Any, content_type: str | None) -> tuple[bytes, str | None]:
    """A body value → (bytes, content type to set or None to keep).

    Strings are sent as they are (a `TypedText` gets its own content type
    unless `content_type` is given). Other values are JSON-encoded and get
    `application/json` unless `content_type` (what the headers input sets)
    is already given; an object body with a form content type is
    form-encoded instead.
    """
    if value is None:
        return b"", None
    if isinstance(value, str):
        hint = value.content_type if isinstance(value, TypedText) and not content_type else None
        return text_to_bytes(value), hint
    if isinstance(value, bytes):
        return value, None
    if is_form_type(content_type) and isinstance(value, Mapping):
        return encode_query(value).encode("ascii"), None
    try:
        try:
            data = json_text(value).encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them instead
            data = json_text_ascii(value).encode("ascii")
    except (ValueError, TypeError, RecursionError) as e:
        raise CodecError(f"the body cannot be encoded as JSON: {e}") from None
    if content_type:
        return data, None
    return data, "application/json"


def json_type(value: Any) -> str:
    """The JSON type name of a value (for traces and error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def header_lookup(value: Mapping[str, Any] | None, name: str) -> Any:
    """Case-insensitive lookup in a header map."""
    if not value:
        return None
    lname = name.lower()
    for key, item in value.items():
        if isinstance(key, str) and key.lower() == lname:
            if isinstance(item, list):  # a repeated header: its first value
                return next((x for x in item if isinstance(x, str)), None)
            return item
    return None


# -- mitmproxy messages ----------------------------------------------------


def write_message(message: Any, headers: Mapping[str, Any] | None, body: Any, *, set_body: bool, where: str = "headers") -> None:
    """Apply a workflow's `headers` and `body` inputs to a mitmproxy request
    or response: headers are set or removed one by one (never framing or
    hop-by-hop ones, see `header_policy`), a new body gets its Content-Type
    (when not a string) and a recomputed Content-Length."""
    if headers is not None:
        headers = writable_headers(headers, where)
        apply_headers(message.headers, headers)
    if not set_body:
        return
    explicit = header_lookup(headers, "content-type") if headers else None
    current = message.headers.get("content-type")
    if explicit is None and is_form_type(current) and isinstance(body, Mapping):
        explicit = current
    data, content_type = encode_body(body, explicit)
    if content_type is not None:
        message.headers["content-type"] = content_type
    message.content = data


def message_query(message: Any) -> str:
    path = message.path
    return path.split("?", 1)[1] if "?" in path else ""


# RFC 3986 reserved characters, plus `%`: their escapes change a URI's
# meaning when decoded, so Kong keeps them escaped (hex uppercased). Every
# other escape is decoded -- unreserved characters as RFC 3986 6.2.2.2 says,
# and, as Kong's router does, the "other" bytes too (`%20`, UTF-8 sequences).
_KEEP_ESCAPED = frozenset(b"!*'();:@&=+$,/?%#[]")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def _decode_escape(m: re.Match[bytes]) -> bytes:
    byte = int(m.group(1), 16)
    return m.group(0).upper() if byte in _KEEP_ESCAPED else bytes((byte,))


_REGEX_SPECIAL = frozenset(b".^$*+?{}[]\\|()")


def _decode_escape_in_regex(m: re.Match[bytes]) -> bytes:
    decoded = _decode_escape(m)
    return b"\\" + decoded if len(decoded) == 1 and decoded[0] in _REGEX_SPECIAL else decoded


def normalize_path_regex(pattern: str) -> str:
    """A `~` path regex as Kong normalizes it (traditional.md, "Path
    normalization"): its escapes decoded or uppercased as in
    `normalize_path`, so that it can match the normalized path (`%2f` would
    never match `%2F`, `%61` never `a`); a decoded character that is a regex
    metacharacter (`%2E`) is escaped (`\\.`). Dot-segments and slashes are
    left alone."""
    if "%" not in pattern:
        return pattern
    data = _ESCAPE.sub(_decode_escape_in_regex, pattern.encode("utf-8", "surrogateescape"))
    return data.decode("utf-8", "surrogateescape")


def normalize_path(raw: str) -> str:
    """The path as Kong's router and `kong.request.get_path()` see it.

    Escapes of characters other than reserved ones are decoded (bytes that
    are not UTF-8 become lone surrogates, as in mitmproxy's `request.path`),
    the others' hex digits uppercased; invalid escapes (`%zz`) stay as sent.
    Then dot-segments are removed (RFC 3986 5.2.4; `..` above the root
    stays at the root) and repeated slashes merged. One pass: `%252e` stays
    `%252e`, it never becomes `.`.
    """
    path = raw
    if "%" in path:
        data = _ESCAPE.sub(_decode_escape, path.encode("utf-8", "surrogateescape"))
        path = data.decode("utf-8", "surrogateescape")
    if "." not in path and "//" not in path:
        return path
    return _remove_dot_segments(path)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 with empty segments dropped (`//` merged)."""
    if not path.startswith("/"):  # not an origin-form target (`*`, ...): rare
        return _remove_dot_segments_stepwise(path)
    segments: list[str] = []
    parts = path.split("/")
    last = len(parts) - 1
    trailing_slash = False
    for i, seg in enumerate(parts[1:], 1):
        if seg == "..":
            if segments:
                segments.pop()
        elif seg not in ("", "."):
            segments.append(seg)
            continue
        trailing_slash = i == last  # `/a/`, `/a/.` and `/a/b/..` end with a slash
    if not segments:
        return "/"
    return "/" + "/".join(segments) + ("/" if trailing_slash else "")


def _remove_dot_segments_stepwise(path: str) -> str:
    """RFC 3986 5.2.4 step by step, `//` merged: any path, slow."""
    out: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith("./"):
            rest = rest[2:]
        elif rest.startswith("/./") or rest == "/.":
            rest = "/" + rest[3:]
        elif rest.startswith("/../") or rest == "/..":
            rest = "/" + rest[4:]
            if out:
                out.pop()
        elif rest in (".", ".."):
            rest = ""
        elif rest.startswith("//"):
            rest = rest[1:]
        else:
            end = rest.find("/", 1)
            end = len(rest) if end < 0 else end
            out.append(rest[:end])
            rest = rest[end:]
    return "".join(out)
