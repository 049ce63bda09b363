"""Bounded body decoding (bodies.py): every encoding mitmproxy decodes is
decoded to the same bytes, and stops at the limit without inflating a bomb."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
from mitmproxy.net.encoding import zstd
from mitmproxy.test import tutils

from mitmdatakit.bodies import parse_limit, read_body
from mitmdatakit.errors import BodyStreamed, BodyTooLarge

PLAIN = b'{"hello": "world", "n": [1, 2, 3]}' * 100

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflateraw": lambda b: zlib.compress(b)[2:-4],  # raw deflate, no zlib header
    "br": brotli.compress,
    "zstd": zstd.compress,
    "identity": lambda b: b,
}


def message(raw: bytes, encoding: str | None):
    req = tutils.treq()
    req.raw_content = raw
    if encoding:
        req.headers["content-encoding"] = encoding
    return req


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_each_encoding_decodes_like_mitmproxy(encoding):
    msg = message(ENCODERS[encoding](PLAIN), encoding)
    assert read_body(msg, len(PLAIN), "the body") == msg.get_content(strict=False) == PLAIN


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_one_byte_over_the_limit_fails(encoding):
    msg = message(ENCODERS[encoding](PLAIN), encoding)
    with pytest.raises(BodyTooLarge, match="datakit_body_size_limit"):
        read_body(msg, len(PLAIN) - 1, "the body")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_a_bomb_is_refused_without_inflating_it(encoding):
    bomb = ENCODERS[encoding](b"\0" * (64 * 1024 * 1024))  # 64 MiB inflated
    assert len(bomb) < 1024 * 1024
    with pytest.raises(BodyTooLarge, match="after decompression"):
        read_body(message(bomb, encoding), 1024 * 1024, "the body")


def test_the_raw_size_is_bounded_too():
    with pytest.raises(BodyTooLarge, match="before decompression"):
        read_body(message(b"x" * 101, None), 100, "the body")


def test_corrupt_or_unknown_encodings_stay_raw_as_in_mitmproxy():
    for raw, encoding in ((b"not gzip at all", "gzip"), (b"abc", "x-custom"), (b"\x00garbage", "br"), (b"junk", "zstd")):
        msg = message(raw, encoding)
        assert read_body(msg, 10 * len(PLAIN), "b") == raw == msg.get_content(strict=False)


def test_a_truncated_gzip_body_gives_what_mitmproxy_gives():
    msg = message(gzip.compress(PLAIN)[:-20], "gzip")
    assert read_body(msg, 10 * len(PLAIN), "b") == msg.get_content(strict=False)


def test_concatenated_zstd_frames():
    msg = message(zstd.compress(PLAIN) + zstd.compress(PLAIN), "zstd")
    assert read_body(msg, 2 * len(PLAIN), "b") == PLAIN + PLAIN
    with pytest.raises(BodyTooLarge, match="after decompression"):
        read_body(msg, 2 * len(PLAIN) - 1, "b")


def test_a_streamed_body_is_an_error_not_an_empty_body():
    msg = message(b"", None)
    msg.stream = True
    with pytest.raises(BodyStreamed, match="stream_large_bodies"):
        read_body(msg, 100, "the request body")


@pytest.mark.parametrize("text,size", [("10m", 10 * 1024**2), ("512k", 512 * 1024), ("1g", 1024**3), ("100", 100)])
def test_parse_limit(text, size):
    assert parse_limit(text) == size


@pytest.mark.parametrize("text", ["", "ten", "10x", "0", "-5", "1.5m"])
def test_parse_limit_refuses(text):
    with pytest.raises(ValueError):
        parse_limit(text)
