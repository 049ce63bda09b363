"""Bounded body reading: the `datakit_body_size_limit` option.

mitmproxy's `message.content` decodes a compressed body all at once, so a
1 MB gzip body that inflates to 1 GiB costs 1 GiB before anyone can look at
its size. Datakit reads bodies here instead: the raw (on-the-wire) size is
checked first, then the body is decompressed incrementally and reading stops
at limit + 1 bytes.

Encodings mitmproxy decodes (gzip, deflate, br, zstd, identity) are decoded
here with the same rules; any other Content-Encoding is passed on undecoded,
as `get_content(strict=False)` does (its size is the raw size, already
bounded). A body that fails to decompress is passed on raw, likewise.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from mitmproxy import http
from mitmproxy.utils import human

from .errors import BODY_SIZE_OPTION, BodyStreamed, BodyTooLarge

OPTION = BODY_SIZE_OPTION
DEFAULT_LIMIT_TEXT = "10m"


def parse_limit(text: str) -> int:
    """A size in mitmproxy's syntax (`10m`, `512k`, `1g`, bytes) → bytes.
    Raises ValueError for anything else, zero or negative sizes included."""
    try:
        size = human.parse_size(text.strip() if isinstance(text, str) else text)
    except ValueError:
        size = None
    if size is None or size <= 0:
        raise ValueError(f"{OPTION} must be a positive size such as 10m or 512k, got {text!r}")
    return size


DEFAULT_LIMIT = parse_limit(DEFAULT_LIMIT_TEXT)


def read_body(message: http.Message, limit: int, what: str) -> bytes | None:
    """The decoded body of a mitmproxy request or response, at most `limit`
    bytes after decompression (else BodyTooLarge). None: no body at all."""
    if message.stream:
        # mitmproxy forwarded the body chunk by chunk; it was not kept
        raise BodyStreamed(what)
    raw = message.raw_content
    if raw is None:
        return None
    if len(raw) > limit:
        raise BodyTooLarge(what, limit, encoded=True)
    encoding = (message.headers.get("content-encoding") or "").strip().lower()
    decode = DECODERS.get(encoding)
    if decode is None or not raw:
        return raw  # identity, or an encoding mitmproxy does not decode either
    try:
        return decode(raw, limit)
    except _Overflow:
        raise BodyTooLarge(what, limit) from None
    except (zlib.error, ValueError, EOFError, _DecodeFailed):
        return raw  # as get_content(strict=False): a corrupt body stays raw


class _Overflow(Exception):
    """Decompressed output passed the limit."""


class _DecodeFailed(Exception):
    pass


def _zlib(raw: bytes, limit: int, wbits: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(raw, limit + 1)
    if len(out) > limit:
        raise _Overflow
    # less than limit+1 came out, so all input was consumed; flush the rest
    tail = d.flush()
    if len(out) + len(tail) > limit:
        raise _Overflow
    return out + tail if tail else out


def _gzip(raw: bytes, limit: int) -> bytes:
    return _zlib(raw, limit, 47)  # gzip or zlib header, as mitmproxy's decode_gzip


def _deflate(raw: bytes, limit: int) -> bytes:
    try:
        return _zlib(raw, limit, 15)
    except zlib.error:
        return _zlib(raw, limit, -15)  # raw deflate without header, as mitmproxy


def _brotli(raw: bytes, limit: int) -> bytes:
    import brotli

    d = brotli.Decompressor()
    try:
        parts = [d.process(raw, output_buffer_limit=limit + 1)]
        total = len(parts[0])
        while total <= limit and not d.can_accept_more_data():
            more = d.process(b"", output_buffer_limit=limit + 1 - total)
            if not more:
                break
            parts.append(more)
            total += len(more)
    except brotli.error:
        raise _DecodeFailed from None
    if total > limit:
        raise _Overflow
    if not d.is_finished():
        raise _DecodeFailed
    return b"".join(parts)


def _zstd(raw: bytes, limit: int) -> bytes:
    from mitmproxy.net.encoding import zstd  # type: ignore[attr-defined]  # the zstd module mitmproxy uses

    try:
        return _zstd_frames(zstd, raw, limit)
    except zstd.ZstdError:
        raise _DecodeFailed from None


def _zstd_frames(zstd: Any, raw: bytes, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    data = raw
    while data:  # one decompressor per frame (concatenated frames are valid)
        d = zstd.ZstdDecompressor()
        chunk = d.decompress(data, limit + 1 - total)
        while True:
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _Overflow
            if d.eof or d.needs_input:
                break
            chunk = d.decompress(b"", limit + 1 - total)
        if not d.eof:
            raise _DecodeFailed
        data = d.unused_data
    return b"".join(parts)


DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip,
    "deflate": _deflate,
    "deflateraw": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
"""Content-Encodings decoded with a bound (the ones mitmproxy decodes)."""


__all__ = ["DEFAULT_LIMIT", "OPTION", "BodyStreamed", "BodyTooLarge", "parse_limit", "read_body"]
