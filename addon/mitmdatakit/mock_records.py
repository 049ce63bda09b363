"""What the mock HTTP server (`mock_server.MockServer`) records and answers
with: `Headers` as received, `RecordedRequest`, and `Reply`."""

from __future__ import annotations

import json as _json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import parse_qs

__all__ = ["Headers", "RecordedRequest", "Reply"]


# --------------------------------------------------------------------------- #
# Headers / recorded requests
# --------------------------------------------------------------------------- #


class Headers(Sequence[tuple[str, str]]):
    """An ordered list of ``(name, value)`` pairs, exactly as received.

    Names keep their original case and repeated headers stay separate pairs.
    Lookups by name are case-insensitive::

        h.get("content-type")        # first value or None
        h.get_all("x-multi")         # every value, in order
        h["X-One"]                   # first value, KeyError if absent
        h[0]                         # first pair
        "accept" in h                # case-insensitive name test
        h.to_dict()                  # {lowercase name: str | [str, ...]}
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]

    # Sequence protocol -----------------------------------------------------
    @overload
    def __getitem__(self, key: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, key: slice) -> list[tuple[str, str]]: ...
    @overload
    def __getitem__(self, key: str) -> str: ...
    def __getitem__(self, key: int | slice | str) -> tuple[str, str] | list[tuple[str, str]] | str:
        if isinstance(key, str):
            values = self.get_all(key)
            if not values:
                raise KeyError(key)
            return values[0]
        return self._pairs[key]

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            low = item.lower()
            return any(k.lower() == low for k, _ in self._pairs)
        return item in self._pairs

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        if isinstance(other, list):
            return self._pairs == [tuple(p) for p in other]
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"

    # Lookups -----------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self._pairs if k.lower() == low]

    def names(self) -> list[str]:
        """Header names as received (original case, with repeats)."""
        return [k for k, _ in self._pairs]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def to_dict(self) -> dict[str, str | list[str]]:
        """Lowercase names; single values as str, repeated ones as a list."""
        out: dict[str, str | list[str]] = {}
        for k, v in self._pairs:
            low = k.lower()
            if low not in out:
                out[low] = v
            else:
                prev = out[low]
                out[low] = [*prev, v] if isinstance(prev, list) else [prev, v]
        return out


@dataclass
class RecordedRequest:
    """One request as the mock server received it."""

    method: str
    path: str  # percent-decoded path, without the query
    raw_path: str  # request target as sent (path + "?" + query), undecoded
    query_string: str  # raw query string (no leading "?"), undecoded
    headers: Headers
    body: bytes
    version: str = "HTTP/1.1"
    scheme: str = "http"
    remote: str | None = None  # client "ip:port"
    received_at: float = field(default_factory=time.monotonic)

    @property
    def raw_query(self) -> str:
        return self.query_string

    @property
    def query(self) -> dict[str, list[str]]:
        """Decoded query: every key maps to the list of its values (blank kept)."""
        return parse_qs(self.query_string, keep_blank_values=True)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.body)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def to_echo(self) -> dict[str, Any]:
        """The JSON document the default echo handler answers with."""
        query: dict[str, str | list[str]] = {
            k: (v[0] if len(v) == 1 else v) for k, v in self.query.items()
        }
        return {
            "method": self.method,
            "path": self.path,
            "raw_path": self.raw_path,
            "query": query,
            "raw_query": self.query_string,
            "headers": self.headers.to_dict(),
            "raw_headers": [list(p) for p in self.headers],
            "body": self.body.decode("utf-8", "replace"),
        }


# --------------------------------------------------------------------------- #
# Replies
# --------------------------------------------------------------------------- #

HeadersLike = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass
class Reply:
    """A static response description.

    ``json`` (when not None) is serialized as the body with
    ``Content-Type: application/json`` unless ``headers`` sets one; otherwise
    ``body`` (str or bytes) is sent as is.  ``headers`` may be a mapping or a
    list of pairs (for repeated headers).  ``delay`` (seconds) is awaited on
    the server loop before answering, so concurrent delayed requests overlap.

    Faults: ``reset=True`` sends the headers (with the full Content-Length)
    and part of the body, then aborts the TCP connection (RST).
    ``hang=True`` never answers; the connection is dropped when the server
    stops.
    """

    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    headers: HeadersLike | None = None
    delay: float = 0.0
    reset: bool = False
    hang: bool = False
    reason: str | None = None

    def header_pairs(self) -> list[tuple[str, str]]:
        if self.headers is None:
            return []
        if isinstance(self.headers, Mapping):
            return [(str(k), str(v)) for k, v in self.headers.items()]
        return [(str(k), str(v)) for k, v in self.headers]

    def body_bytes(self) -> bytes:
        if self.json is not None:
            return _json.dumps(self.json).encode()
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return bytes(self.body)
