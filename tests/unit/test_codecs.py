"""Header, query and body codecs (docs/nodes.md#implicit-nodes), with hypothesis round-trips."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy.http import Headers

from mitmdatakit.codecs import (
    _remove_dot_segments_stepwise,
    apply_headers,
    bytes_to_text,
    decode_body,
    decode_headers,
    decode_query,
    encode_body,
    encode_headers,
    encode_query,
    header_value_strings,
    json_text,
    json_text_ascii,
    normalize_path,
    normalize_path_regex,
    text_to_bytes,
)
from mitmdatakit.errors import CodecError

# -- headers -----------------------------------------------------------------

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~", min_size=1, max_size=20)
FIELD_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
).map(str.strip)


@st.composite
def header_fields(draw):
    names = draw(st.lists(TOKEN, min_size=0, max_size=8))
    fields = []
    for name in names:
        for _ in range(draw(st.integers(1, 3))):
            variant = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
            fields.append((variant, draw(FIELD_VALUE)))
    return draw(st.permutations(fields))


@given(header_fields())
def test_header_map_round_trip(fields):
    decoded = decode_headers(fields)
    # keys are lowercase; repeated headers keep their order
    for name, value in decoded.items():
        assert name == name.lower()
        expected = [v for n, v in fields if n.lower() == name]
        assert (value if isinstance(value, list) else [value]) == expected
    encoded = encode_headers(decoded)
    assert decode_headers(encoded) == decoded
    # and through real mitmproxy Headers
    h = Headers()
    apply_headers(h, decoded)
    assert decode_headers(h.items(multi=True)) == decoded


def test_headers_single_and_repeated():
    assert decode_headers([("X-A", "1"), ("x-a", "2"), ("Host", "h")]) == {"x-a": ["1", "2"], "host": "h"}


def test_apply_headers_sets_removes_and_keeps_others():
    h = Headers(host="example.com", accept="*/*", x_old="gone")
    apply_headers(h, {"X-Old": None, "X-New": "yes", "X-Num": 5, "X-Bool": True, "X-List": ["a", "b"]})
    assert "x-old" not in h
    assert h["accept"] == "*/*" and h["host"] == "example.com"
    assert h["x-new"] == "yes" and h["x-num"] == "5" and h["x-bool"] == "true"
    assert h.get_all("x-list") == ["a", "b"]


_NAMES = st.sampled_from(["X-A", "x-a", "X-B", "Accept", "host", "Set-Cookie", "set-cookie", "X-Long-Name"])
_VALUES = st.one_of(st.none(), st.text(alphabet="ab\u00e9 \udcff", max_size=3), st.lists(st.text(alphabet="xy\u00e9", max_size=2), max_size=3), st.integers(-5, 5), st.booleans())


@settings(max_examples=300, deadline=None)
@given(
    existing=st.lists(st.tuples(_NAMES, st.text(alphabet="pq", max_size=2)), max_size=6),
    changes=st.dictionaries(_NAMES, _VALUES, max_size=5),
)
def test_apply_headers_is_set_all_per_name(existing, changes):
    """One pass over the fields, with the result of mitmproxy's own
    `set_all` (or removal) applied name by name in map order: same fields,
    same order, same name casing, same bytes (surrogates included)."""
    expected = Headers([(k.encode(), v.encode()) for k, v in existing])
    for name, item in changes.items():
        texts = header_value_strings(name, item)
        if texts is None:
            expected.pop(name, None)
        else:
            expected.set_all(name, texts)
    h = Headers([(k.encode(), v.encode()) for k, v in existing])
    apply_headers(h, changes)
    assert h.fields == expected.fields


@pytest.mark.parametrize("bad", ["a\r\nInjected: 1", "a\nb", "nul\0"])
def test_header_injection_refused(bad):
    h = Headers(keep="1")
    with pytest.raises(CodecError, match="CR, LF or NUL"):
        apply_headers(h, {"x-ok": "fine", "x-bad": bad})
    assert "x-ok" not in h  # nothing is written when one value is bad
    with pytest.raises(CodecError):
        apply_headers(h, {"x-bad\r\nname": "v"})


def test_header_values_must_be_scalars():
    with pytest.raises(CodecError, match="invalid value"):
        encode_headers({"x": {"nested": 1}})


# -- query -------------------------------------------------------------------

QUERY_TEXT = st.text(max_size=12)
QUERY_KEY = st.text(min_size=1, max_size=12)
QUERY_VALUE = st.one_of(st.none(), QUERY_TEXT, st.lists(st.one_of(st.none(), QUERY_TEXT), min_size=2, max_size=4))


@given(st.dictionaries(QUERY_KEY, QUERY_VALUE, max_size=6))
@settings(max_examples=300)
def test_query_round_trip(query):
    assert decode_query(encode_query(query)) == query


@given(st.dictionaries(st.just(""), QUERY_TEXT, max_size=1))
def test_query_empty_key_with_value_round_trips(query):
    assert decode_query(encode_query(query)) == query


def test_query_null_and_string_null():
    assert encode_query({"flag": None, "s": "null"}) == "flag&s=null"
    assert decode_query("flag&s=null&e=&r=1&r=2") == {"flag": None, "s": "null", "e": "", "r": ["1", "2"]}


def test_query_reserved_and_unicode():
    q = {"a b&c=d": "ü/?#&=+%", "日本": "語"}
    raw = encode_query(q)
    assert "&" not in raw.replace("&", "", 1) or raw.count("&") == 1
    assert decode_query(raw) == q


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=8), st.binary(max_size=12)), min_size=1, max_size=5, unique_by=lambda kv: kv[0]))
@settings(max_examples=300)
def test_query_bytes_survive_decode_encode(pairs):
    """Any bytes, UTF-8 or not (`%ff`), escaped in any hex case, come back
    as the same bytes: decode → encode keeps the query's meaning."""
    from urllib.parse import unquote_to_bytes

    raw = "&".join("".join(f"%{b:02x}" for b in k) + "=" + "".join(f"%{b:02X}" for b in v) for k, v in pairs)
    again = encode_query(decode_query(raw))
    parsed = [part.split("=", 1) for part in again.split("&")]
    assert [(unquote_to_bytes(k), unquote_to_bytes(v)) for k, v in parsed] == pairs


def test_query_invalid_utf8_is_kept_as_uppercase_escape():
    assert decode_query("a=%ff&b=%C3%A9") == {"a": "\udcff", "b": "é"}
    assert encode_query(decode_query("a=%ff&b=%c3%a9")) == "a=%FF&b=%C3%A9"
    assert encode_query(decode_query("q=a+b&r=a%2Bb")) == "q=a%20b&r=a%2Bb"  # `+` is a space, `%2B` a plus


def test_query_with_a_surrogate_no_byte_gives_is_a_codec_error():
    with pytest.raises(CodecError, match="surrogate"):
        encode_query({"a": "\ud800"})


def test_query_scalars():
    assert decode_query(encode_query({"n": 1, "b": False, "f": 1.5})) == {"n": "1", "b": "false", "f": "1.5"}


# -- bodies ------------------------------------------------------------------


def test_json_body_decodes_by_content_type():
    assert decode_body(b'{"a":1}', "application/json; charset=utf-8") == {"a": 1}
    assert decode_body(b'{"a":1}', "application/problem+json") == {"a": 1}
    assert decode_body(b'{"a":1}', "text/plain") == '{"a":1}'
    assert decode_body(b"", "application/json") is None
    assert decode_body(b"not json", "application/json") == "not json"
    with pytest.raises(CodecError):
        decode_body(b"not json", "application/json", strict=True)


def test_non_utf8_is_lossless():
    raw = b"\xff\xfe binary \x00\x80"
    text = decode_body(raw, "application/octet-stream")
    assert text_to_bytes(text) == raw
    assert bytes_to_text(raw) == text


def test_encode_body_rules():
    assert encode_body("raw", None) == (b"raw", None)
    assert encode_body({"a": 1}, None) == (b'{"a":1}', "application/json")
    assert encode_body({"a": 1}, "application/vnd.x+json") == (b'{"a":1}', None)
    data, ct = encode_body({"grant_type": "client_credentials", "client_id": "my id"}, "application/x-www-form-urlencoded")
    assert ct is None and data == b"grant_type=client_credentials&client_id=my%20id"
    assert json.loads(encode_body([1, "ü"], None)[0]) == [1, "ü"]


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("/", "/"),
        ("/a//b/./c/../d", "/a/b/d"),
        ("/%7Euser/%2Fx", "/~user/%2Fx"),
        ("/a/b/", "/a/b/"),
        ("/../..", "/"),
        # Kong decodes every escape but the reserved characters' (PDK
        # kong.request.get_path(): `%C3%B8` becomes `ø`), see below
        ("/caf%c3%a9", "/café"),
    ],
)
def test_normalize_path(raw, expected):
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "pattern,expected,path",
    [
        ("/files%2fsecret", "/files%2Fsecret", "/files%2Fsecret"),  # reserved: uppercased, as paths are
        ("/%61dmin$", "/admin$", "/admin"),  # unreserved: decoded
        ("/a%2eb$", "/a\\.b$", "/a.b"),  # a decoded metacharacter is escaped...
        ("/caf%C3%a9", "/café", "/café"),
        ("/plain", "/plain", "/plain"),
    ],
)
def test_normalize_path_regex_follows_kong(pattern, expected, path):
    """Regex route paths: escapes decoded as in request paths, decoded
    metacharacters escaped (traditional.md, "Path normalization"); the
    result matches the normalized request path."""
    assert normalize_path_regex(pattern) == expected
    assert re.match(expected, normalize_path(path))
    assert not re.match(normalize_path_regex("/a%2eb$"), "/axb")  # ...so it is no wildcard


@pytest.mark.parametrize(
    "raw,expected",
    [
        # the example of app/_references/gateway/pdk/reference/3.14/kong.request.md
        ("/t/Abc%20123%C3%B8%2f/parent/..//test/./", "/t/Abc 123ø%2F/test/"),
        # app/gateway/routing/traditional.md "Path normalization", rules 1-4
        ("/foo%3a", "/foo%3A"),
        ("/fo%6F", "/foo"),
        ("/foo/./bar/../baz", "/foo/baz"),
        ("/foo//bar", "/foo/bar"),
        # decoded first, then dot-segments: `%2e%2e` is `..` (Kong: "/%2e./ is
        # considered the same of /../")
        ("/x/%2e%2e/admin/users", "/admin/users"),
        ("/x/%2E./admin", "/admin"),
        # one pass: an escaped `%` stays, so `%252e` never becomes `.`
        ("/%252e%252e/admin", "/%252e%252e/admin"),
        # reserved characters stay escaped, hex uppercased; `%2F` is no separator
        ("/admin%2fusers", "/admin%2Fusers"),
        ("/a%3b%3D%2b%40%21", "/a%3B%3D%2B%40%21"),
        ("/%25", "/%25"),
        # invalid or short escapes are left as sent
        ("/%zz/%2", "/%zz/%2"),
        ("/%", "/%"),
        # bytes that are not UTF-8: lone surrogates, as mitmproxy's request.path
        ("/%ff", "/\udcff"),
        # `..` above the root stays at the root (RFC 3986 5.2.4)
        ("/..", "/"),
        ("/../admin", "/admin"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        # `;` parameters are not stripped (Kong does not either)
        ("/admin;x/users", "/admin;x/users"),
        # not origin-form: RFC 3986 5.2.4 as written
        ("*", "*"),
        ("a/../b", "/b"),
    ],
)
def test_normalize_path_follows_kong(raw, expected):
    """Kong's rules: app/gateway/routing/traditional.md ("Path normalization")
    and app/_references/gateway/pdk/reference/3.14/kong.request.md
    (get_path) in Kong/developer.konghq.com."""
    assert normalize_path(raw) == expected


PATH_PIECES = st.lists(
    st.sampled_from(["", ".", "..", "a", "b", "%2e", "%2E%2e", "%61", "%2f", "%zz", "x;y", "é", "%ff"]),
    max_size=8,
)


@given(PATH_PIECES, st.booleans())
@settings(max_examples=400)
def test_normalize_path_is_rfc_dot_removal_and_idempotent(pieces, absolute):
    """The fast split-based dot removal agrees with RFC 3986 5.2.4 done step
    by step, and normalizing twice changes nothing."""
    raw = ("/" if absolute else "") + "/".join(pieces)
    once = normalize_path(raw)
    assert normalize_path(once) == once or "%25" in raw
    decoded = normalize_path(raw.replace(".", "x").replace("/", "/")) if False else None  # noqa: F841
    if raw.startswith("/"):
        import re as _re

        plain = _re.sub("%2[eE]", ".", raw.replace("%61", "a").replace("%ff", "\udcff"))
        assert once == _remove_dot_segments_stepwise(plain.replace("%2f", "%2F"))
    assert "//" not in once


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b"[1e999]", b'{"a": -Infinity}'])
def test_non_standard_json_numbers_are_not_json(raw):
    assert decode_body(raw, "application/json") == raw.decode()  # passed on as text
    with pytest.raises(CodecError):
        decode_body(raw, "application/json", strict=True)
    with pytest.raises(CodecError):
        encode_body({"x": float("nan")}, None)


def test_lone_surrogates_are_escaped_not_mangled():
    value = decode_body(b'{"a": "\\udcff", "b": "\\ud800"}', "application/json")
    data, _ = encode_body(value, None)
    data.decode("utf-8")  # valid UTF-8
    assert json.loads(data) == value
    # bytes that are not UTF-8 are not JSON: a lossless string
    assert text_to_bytes(decode_body(b'{"a": "\xed\xa0\x80"}', "application/json")) == b'{"a": "\xed\xa0\x80"}'


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
@settings(max_examples=300, deadline=None)
def test_json_text_is_compact_json_dumps(value):
    """The reused C encoder writes what json.dumps writes, compact."""
    assert json_text(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert json_text_ascii(value) == json.dumps(value, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize("bad, error", [
    (float("nan"), ValueError), ({"a": [float("inf")]}, ValueError), ({(1, 2): 1}, TypeError), (b"x", TypeError),
])
def test_json_text_refuses_what_is_not_json(bad, error):
    with pytest.raises(error):
        json_text(bad)


def test_json_text_of_a_circular_value_is_a_recursion_error():
    loop: list = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        json_text(loop)


def test_too_deep_json_is_a_codec_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(CodecError, match="nested too deeply"):
        decode_body(deep, "application/json")


def test_repeated_content_type_in_a_header_map_uses_the_first():
    from mitmdatakit.codecs import header_lookup

    assert header_lookup({"Content-Type": ["application/x-www-form-urlencoded", "text/plain"]}, "content-type") == "application/x-www-form-urlencoded"
    from mitmproxy.test import tutils

    from mitmdatakit.codecs import write_message

    req = tutils.treq(content=b"")
    write_message(req, {"content-type": ["application/x-www-form-urlencoded", "x/y"]}, {"a": "1"}, set_body=True)
    assert req.content == b"a=1"
