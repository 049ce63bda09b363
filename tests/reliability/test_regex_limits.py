"""A pattern from a workflow or a decK file cannot stall the proxy on a path
the client chose (docs/hardening.md#matching), through a real mitmdump.

Python's `re` backtracks without bound: `~/api/(a|aa)+$` tested on
`/api/aaaa...a!` (40 a's) takes hours. Kong's router runs PCRE, which gives
up past its match limit (the route does not match); here a test that takes
longer than `config_regex.MATCH_TIMEOUT` counts as no match, and the log
names the pattern.
"""

from __future__ import annotations

import threading
import time

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.reliability._support import write_workflows

EVIL = "~/api/(a|aa)+$"
EVIL_PATH = "/api/" + "a" * 40 + "!"


def _timed_neighbours(mitm, url: str, results: list[float], stop: threading.Event) -> None:
    with mitm.client(timeout=10.0) as c:
        while not stop.is_set():
            t0 = time.monotonic()
            assert c.get(url).status_code == 200
            results.append(time.monotonic() - t0)


def test_a_backtracking_match_path_gives_up_instead_of_stalling(tmp_path, start_mitmdump, make_mock_server):
    upstream = make_mock_server()
    cfg = write_workflows(tmp_path, {
        "guard": {"match": {"paths": [EVIL]}, "nodes": [{"name": "DENY", "type": "exit", "status": 403}]},
    })
    mitm = start_mitmdump(cfg)
    with mitm.client(timeout=30.0) as client:
        assert client.get(f"{upstream.url}/api/aaaa").status_code == 403  # the pattern still matches
        neighbours: list[float] = []
        stop = threading.Event()
        t = threading.Thread(target=_timed_neighbours, args=(mitm, f"{upstream.url}/other", neighbours, stop), daemon=True)
        t.start()
        try:
            t0 = time.monotonic()
            r = client.get(f"{upstream.url}{EVIL_PATH}")
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            t.join(timeout=10)
    assert r.status_code == 200, r.text  # no match: proxied, as Kong's router gives up
    assert elapsed < 2.0, elapsed
    assert neighbours and max(neighbours) < 1.0, neighbours
    mitm.wait_for_log(r"gave up after \d+ ms", timeout=5)


def test_a_backtracking_route_regex_in_a_deck_file_gives_up(tmp_path, start_mitmdump, make_mock_server):
    upstream = make_mock_server()
    deck = tmp_path / "kong.yaml"
    deck.write_text(
        '_format_version: "3.0"\n'
        "services:\n"
        "  - name: api\n"
        f"    url: {upstream.url}\n"
        "    routes:\n"
        "      - name: evil\n"
        f"        paths: [\"{EVIL}\"]\n"
        "        strip_path: false\n"
        "        headers: {x-kind: [\"~*^(a|aa)+$\"]}\n"
        "        plugins:\n"
        "          - name: datakit\n"
        "            config:\n"
        "              nodes:\n"
        "                - {name: out, type: exit, status: 403}\n"
    )
    mitm = start_mitmdump(deck)
    with mitm.client(timeout=30.0) as client:
        assert client.get(f"{upstream.url}/api/aa", headers={"x-kind": "aaaa"}).status_code == 403
        for path, kind in ((EVIL_PATH, "aaaa"), ("/api/aa", "a" * 40 + "!")):
            t0 = time.monotonic()
            r = client.get(f"{upstream.url}{path}", headers={"x-kind": kind})
            assert time.monotonic() - t0 < 2.0
            assert r.status_code == 200, r.text  # no route matched: passed through


def test_an_invalid_header_regex_names_the_route(tmp_path):
    from mitmdatakit.errors import ConfigError
    from mitmdatakit.kong.entities import Route
    from mitmdatakit.kong.router import Router

    route = Route.build({"name": "r", "headers": {"x-kind": ["~*(unclosed"]}, "paths": ["/"]}, None, 0, "kong.yaml", "routes.r")
    try:
        Router([route], source="kong.yaml")
    except ConfigError as e:
        assert "invalid header regex" in str(e) and "routes.r.headers.x-kind" in str(e) and "kong.yaml" in str(e)
    else:
        raise AssertionError("an invalid header regex loaded")


def test_match_timeout_is_short_next_to_a_real_match():
    from mitmdatakit.config_regex import MATCH_TIMEOUT, ConfigRegex

    rx = ConfigRegex("/orders/(?<id>\\d+)$")
    t0 = time.perf_counter()
    for _ in range(1000):
        assert rx.match("/orders/12345") is not None
    assert (time.perf_counter() - t0) / 1000 < MATCH_TIMEOUT / 100


@settings(max_examples=500, deadline=None)
@example(pattern="/a|/b", texts=["/b"])
@example(pattern="/x[|]y|(/z)", texts=["/z"])
@given(pattern=st.text(alphabet="/ab|()?*+.[]^$\\{}2,-<>:i#", max_size=12), texts=st.lists(st.text(alphabet="/abAB|()?*.[]\\{}2", max_size=8), max_size=5))
def test_the_literal_prefix_never_refuses_a_match(pattern, texts):
    """`match` refuses a text without the pattern's literal start before the
    timed test: the answer must be the regex module's own, for any pattern."""
    import regex

    from mitmdatakit.config_regex import ConfigRegex

    try:
        rx = ConfigRegex(pattern)
    except regex.error:
        return
    plain = regex.compile(pattern, regex.VERSION0)
    # texts a pattern's alternatives would match: its parts without their metacharacters
    parts = ["".join(c for c in part if c.isalnum() or c == "/") for part in pattern.split("|")]
    for text in [*texts, *parts, rx._prefix, rx._prefix + "x"]:
        got, want = rx.match(text), plain.match(text)
        assert (got is None) == (want is None), (pattern, text, rx._prefix)
        assert got is None or got.span() == want.span()
