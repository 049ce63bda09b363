"""A readable difference between two HTTP responses: the recorded client
response of a flow and the one a replay produced (`datakit replay`).

Status, then headers (by lowercase name; repeated headers compared as a
list), then the body: JSON bodies structurally (one line per changed
field, named by its path: `$.items[0].price`), text with difflib, other
bytes by size. Headers in `ignore_headers` (default: `Date`, and
`Content-Length`, which follows the body) are left out.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from mitmproxy import http

from ..codecs import is_json_type

__all__ = ["DEFAULT_IGNORED_HEADERS", "diff_responses"]

DEFAULT_IGNORED_HEADERS = frozenset({"date", "content-length"})
_MISSING: Any = object()
_SHOWN = 120  # characters of a value shown in a line


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _headers(message: http.Response, ignored: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in message.headers.items(multi=True):
        key = name.lower()
        if key not in ignored:
            out.setdefault(key, []).append(value)
    return out


def _header_lines(old: http.Response, new: http.Response, ignored: frozenset[str]) -> list[str]:
    before, after = _headers(old, ignored), _headers(new, ignored)
    lines = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        shown_a = None if a is None else (a[0] if len(a) == 1 else a)
        shown_b = None if b is None else (b[0] if len(b) == 1 else b)
        if a is None:
            lines.append(f"header {name}: added {_short(shown_b)}")
        elif b is None:
            lines.append(f"header {name}: removed (was {_short(shown_a)})")
        else:
            lines.append(f"header {name}: {_short(shown_a)} -> {_short(shown_b)}")
    return lines


def _json_body(message: http.Response) -> Any:
    if not is_json_type(message.headers.get("content-type")):
        return _MISSING
    try:
        return json.loads(message.get_content(strict=False) or b"")
    except ValueError:
        return _MISSING


def json_changes(old: Any, new: Any, path: str = "$") -> Iterable[str]:
    """One line per difference between two JSON values, named by path."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            child = f"{path}.{key}" if str(key).isidentifier() else f"{path}[{json.dumps(key)}]"
            if key not in new:
                yield f"{child}: removed (was {_short(old[key])})"
            elif key not in old:
                yield f"{child}: added {_short(new[key])}"
            else:
                yield from json_changes(old[key], new[key], child)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            child = f"{path}[{i}]"
            if i >= len(new):
                yield f"{child}: removed (was {_short(old[i])})"
            elif i >= len(old):
                yield f"{child}: added {_short(new[i])}"
            else:
                yield from json_changes(old[i], new[i], child)
    elif old != new or type(old) is not type(new):
        yield f"{path}: {_short(old)} -> {_short(new)}"


def _body_lines(old: http.Response, new: http.Response) -> list[str]:
    a, b = old.get_content(strict=False) or b"", new.get_content(strict=False) or b""
    if a == b:
        return []
    old_json, new_json = _json_body(old), _json_body(new)
    if old_json is not _MISSING and new_json is not _MISSING:
        return [f"body {line}" for line in json_changes(old_json, new_json)]
    try:
        text_a, text_b = a.decode("utf-8"), b.decode("utf-8")
    except UnicodeDecodeError:
        return [f"body: {len(a)} bytes -> {len(b)} bytes (binary, differs)"]
    udiff = difflib.unified_diff(
        text_a.splitlines(), text_b.splitlines(), "recorded", "replayed", n=2, lineterm="",
    )
    return ["body:", *(f"  {line}" for line in udiff)]


def diff_responses(
    recorded: http.Response, replayed: http.Response, ignore_headers: Iterable[str] = DEFAULT_IGNORED_HEADERS,
) -> list[str]:
    """The differences, one line each (a text body diff spans several);
    empty when the responses are the same."""
    ignored = frozenset(h.lower() for h in ignore_headers)
    lines = []
    if recorded.status_code != replayed.status_code:
        lines.append(f"status: {recorded.status_code} -> {replayed.status_code}")
    lines += _header_lines(recorded, replayed, ignored)
    lines += _body_lines(recorded, replayed)
    return lines
