"""Header maps: which names a map may not set, token names, value characters."""

from __future__ import annotations

import logging

import pytest
from mitmproxy.http import Headers, Request

from mitmdatakit.codecs import apply_headers, encode_headers, write_message
from mitmdatakit.errors import CodecError
from mitmdatakit.header_policy import HOP_BY_HOP_HEADERS, is_hop_by_hop, writable_headers

FRAMING = ["Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer",
           "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "proxy-anything"]


@pytest.mark.parametrize("name", FRAMING + [n.upper() for n in FRAMING])
def test_framing_and_hop_by_hop_names(name):
    assert is_hop_by_hop(name)
    assert writable_headers({name: "x", "x-kept": "1"}, "t") == {"x-kept": "1"}
    assert writable_headers({name: None}, "t") == {}  # a null removal is ignored too


@pytest.mark.parametrize("name", ["content-type", "content-encoding", "host", "authorization", "x-proxy-id", "tee", "x-te"])
def test_ordinary_names_pass(name):
    assert not is_hop_by_hop(name)


def test_names_listed_in_the_maps_connection_header_go_too():
    value = {"Connection": ["close, X-Hop", "X-Other"], "x-hop": "1", "X-OTHER": "2", "x-kept": "3"}
    assert writable_headers(value, "t") == {"x-kept": "3"}


def test_a_clean_map_is_returned_as_is():
    value = {"x-a": "1", "content-type": "text/plain"}
    assert writable_headers(value, "t") is value
    assert writable_headers("not a map", "t") == "not a map"  # the codec refuses it later


def test_also_drop_and_the_debug_line(caplog):
    with caplog.at_level(logging.DEBUG, logger="mitmdatakit"):
        assert writable_headers({"Host": "evil", "Content-Length": "2", "x": "1"}, "CALL", ("host",)) == {"x": "1"}
    assert "CALL" in caplog.text and "Host, Content-Length" in caplog.text


def test_hop_by_hop_set_is_lowercase():
    assert all(n == n.lower() for n in HOP_BY_HOP_HEADERS)


@pytest.mark.parametrize("content_length", ["2", "0", "99999", None])
def test_the_written_message_has_the_content_length_of_its_body(content_length):
    req = Request.make("POST", "http://example.com/", b"original body")
    write_message(req, {"content-length": content_length, "transfer-encoding": "chunked"}, "new and longer body", set_body=True)
    assert req.headers["content-length"] == str(len(b"new and longer body"))
    assert "transfer-encoding" not in req.headers
    req = Request.make("POST", "http://example.com/", b"original body")
    write_message(req, {"content-length": content_length}, None, set_body=False)
    assert req.headers["content-length"] == str(len(b"original body"))


# -- names and values -----------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_every_tchar_is_a_valid_name():
    assert encode_headers({TCHARS: "v"}) == [(TCHARS, "v")]


@pytest.mark.parametrize("name", ["", "a b", "a:b", "a\tb", "caf\u00e9", "a(b)", "a,b", "a;b", "a/b", "a=b", "a?b",
                                  "a@b", "a[b]", "a{b}", '"a"', "a\\b", "a<b>", "a\x7f", "\u0130", "k\u212a"])
def test_a_name_that_is_not_a_token_is_refused(name):
    h = Headers(keep="1")
    with pytest.raises(CodecError, match="invalid header name"):
        apply_headers(h, {"x-ok": "fine", name: "v"})
    assert "x-ok" not in h  # nothing written


@pytest.mark.parametrize("char", [chr(c) for c in [*range(0, 9), *range(10, 32), 127]])
def test_control_characters_in_values_are_refused(char):
    with pytest.raises(CodecError, match="contains"):
        encode_headers({"x": f"a{char}b"})
    with pytest.raises(CodecError, match="contains"):
        encode_headers({"x": ["fine", f"a{char}b"]})


@pytest.mark.parametrize("value", ["tab\tinside", "caf\u00e9", "\u2603 snow", "\U0001f600", "", " padded ", "\x80\xff"])
def test_tab_and_non_ascii_values_are_allowed(value):
    assert encode_headers({"x": value}) == [("x", value)]
