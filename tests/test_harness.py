"""Tests of the integration harness itself (no Datakit addon needed)."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.harness import (
    Mitmdump,
    MitmdumpError,
    MockServer,
    Reply,
    async_client,
    client,
    free_port,
    run_and_expect_exit,
)

# --------------------------------------------------------------------------- #
# MockServer
# --------------------------------------------------------------------------- #


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_routes_static_callable_and_echo(mock_server: MockServer):
    mock_server.route("GET", "/static", Reply(status=201, json={"a": 1}, headers={"X-Up": "yes"}))
    mock_server.route("POST", "/fn", lambda req: Reply(status=202, body=req.body.upper()))
    mock_server.route("*", "/prefix/*", Reply(body="prefixed", headers=[("Content-Type", "text/plain")]))

    @mock_server.route("GET", "/dict")
    def as_dict(req):
        return {"q": req.query}

    with client() as c:
        r = c.get(mock_server.url + "/static")
        assert (r.status_code, r.json(), r.headers["x-up"]) == (201, {"a": 1}, "yes")
        assert r.headers["content-type"] == "application/json"

        r = c.post(mock_server.url + "/fn", content=b"shout")
        assert (r.status_code, r.content) == (202, b"SHOUT")

        r = c.delete(mock_server.url + "/prefix/x/y")
        assert (r.status_code, r.text) == (200, "prefixed")

        r = c.get(mock_server.url + "/dict?x=1&x=2&e=")
        assert r.json() == {"q": {"x": ["1", "2"], "e": [""]}}

        # unrouted (and wrong-method) requests are echoed
        r = c.put(
            mock_server.url + "/static?k=v&k=w&flag",
            content=b'{"n": 1}',
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 200
        echo = r.json()
        assert echo["method"] == "PUT"
        assert echo["path"] == "/static"
        assert echo["query"] == {"k": ["v", "w"], "flag": ""}
        assert echo["raw_query"] == "k=v&k=w&flag"
        assert echo["headers"]["content-type"] == "application/json"
        assert echo["body"] == '{"n": 1}'

    assert [r.method for r in mock_server.requests] == ["GET", "POST", "DELETE", "GET", "PUT"]
    assert mock_server.last_request.json() == {"n": 1}
    assert len(mock_server.requests_for("/static")) == 2
    assert len(mock_server.requests_for("/static", method="GET")) == 1


def test_later_route_wins_and_handler_errors_are_500(mock_server: MockServer):
    mock_server.route("GET", "/x", Reply(body="first"))
    mock_server.route("GET", "/x", Reply(body="second"))
    mock_server.route("GET", "/err", lambda req: 1 / 0)
    with client() as c:
        assert c.get(mock_server.url + "/x").text == "second"
        r = c.get(mock_server.url + "/err")
    assert r.status_code == 500
    assert "ZeroDivisionError" in mock_server.errors[0]


def test_recording_keeps_header_case_repeats_and_raw_target(mock_server: MockServer):
    # a raw request, so nothing between us and the server normalizes anything
    raw = (
        b"POST /p%20a/th?b=%2F&b=2&flag HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"X-Multi: one\r\n"
        b"x-MULTI: two\r\n"
        b"X-Multi: three\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 11\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b'{"k": "v"} '
    )
    with socket.create_connection(("127.0.0.1", mock_server.port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")

    req = mock_server.last_request
    assert req.method == "POST"
    assert req.path == "/p a/th"
    assert req.raw_path == "/p%20a/th?b=%2F&b=2&flag"
    assert req.query_string == "b=%2F&b=2&flag"
    assert req.query == {"b": ["/", "2"], "flag": [""]}
    assert [p for p in req.headers if p[0].lower() == "x-multi"] == [
        ("X-Multi", "one"),
        ("x-MULTI", "two"),
        ("X-Multi", "three"),
    ]
    assert req.headers.get_all("X-MULTI") == ["one", "two", "three"]
    assert req.headers.get("x-multi") == "one"
    assert req.headers["CONTENT-TYPE"] == "application/json"
    assert "content-length" in req.headers
    assert req.headers.get("missing") is None
    assert req.headers.to_dict()["x-multi"] == ["one", "two", "three"]
    assert req.body == b'{"k": "v"} '
    assert req.json() == {"k": "v"}


async def test_delays_overlap(mock_server: MockServer):
    mock_server.route("GET", "/slow", Reply(json={"ok": True}, delay=0.3))
    async with async_client() as c:
        t0 = time.monotonic()
        rs = await asyncio.gather(*(c.get(mock_server.url + "/slow") for _ in range(3)))
        elapsed = time.monotonic() - t0
    assert [r.status_code for r in rs] == [200, 200, 200]
    assert 0.3 <= elapsed < 0.8, elapsed


def test_reset_fault(mock_server: MockServer):
    mock_server.route("GET", "/reset", Reply(body=b"x" * 100_000, reset=True))
    with client() as c, pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        c.get(mock_server.url + "/reset")


def test_hang_fault_times_out_and_stop_releases_it():
    srv = MockServer().start()
    server_thread = srv._thread  # this server's own thread (other tests' servers may still run)
    assert server_thread is not None
    try:
        srv.route("GET", "/hang", Reply(hang=True))
        with client(timeout=0.5) as c, pytest.raises(httpx.ReadTimeout):
            c.get(srv.url + "/hang")

        # a request still hanging when the server stops gets an error, promptly
        errors: list[BaseException] = []

        def hang():
            try:
                httpx.get(srv.url + "/hang", timeout=30, trust_env=False)
            except BaseException as e:  # noqa: BLE001 - the error is the result, checked below
                errors.append(e)

        t = threading.Thread(target=hang)
        t.start()
        srv.wait_for_requests(2)
    finally:
        t0 = time.monotonic()
        srv.stop()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 3
    assert errors and isinstance(errors[0], httpx.TransportError)
    assert not server_thread.is_alive()


def test_tls_mock_server():
    with MockServer(tls=True) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        assert srv.ca_pem_path is not None and srv.ca_pem_path.exists()
        with client(verify=srv.ca_pem_path) as c:
            assert c.get(srv.url + "/a").json()["path"] == "/a"
            assert c.get(f"https://localhost:{srv.port}/b").json()["path"] == "/b"
        with client() as c, pytest.raises(httpx.ConnectError):
            c.get(srv.url + "/untrusted")
        tmp = srv.ca_pem_path.parent
    assert not tmp.exists()


# --------------------------------------------------------------------------- #
# Mitmdump (with a throwaway addon instead of addon/datakit.py)
# --------------------------------------------------------------------------- #

TRIVIAL_ADDON = textwrap.dedent(
    """
    import logging
    from mitmproxy import ctx

    class HarnessAddon:
        def load(self, loader):
            loader.add_option("datakit_config", str, "", "harness test option")

        def running(self):
            logging.info("Datakit: loaded (harness addon, config=%s)", ctx.options.datakit_config)

        def request(self, flow):
            logging.info("harness-addon saw %s %s", flow.request.method, flow.request.path)
            flow.request.headers["X-Harness-Addon"] = "request-hook"

        def response(self, flow):
            flow.response.headers["X-Harness-Addon"] = "response-hook"

    addons = [HarnessAddon()]
    """
)


@pytest.fixture
def trivial_addon(tmp_path: Path) -> Path:
    p = tmp_path / "trivial_addon.py"
    p.write_text(TRIVIAL_ADDON)
    return p


def test_mitmdump_regular_mode(start_mitmdump, mock_server: MockServer, trivial_addon: Path, tmp_path: Path):
    cfg = tmp_path / "wf.yaml"
    cfg.write_text("nodes: []\n")
    mitm = start_mitmdump(cfg, script=trivial_addon)
    assert mitm.is_running()
    assert mitm.proxy_url == f"http://127.0.0.1:{mitm.port}"
    mitm.wait_for_log(r"Datakit: loaded \(harness addon, config=.*wf\.yaml\)", timeout=1)
    assert mitm.ca_cert_path.exists()

    mock_server.route("GET", "/hello", Reply(json={"hi": 1}))
    with client(mitm.proxy_url) as c:
        r = c.get(mock_server.url + "/hello?x=1", headers=[("X-Case", "Kept")])
    assert r.status_code == 200
    assert r.json() == {"hi": 1}
    assert r.headers["x-harness-addon"] == "response-hook"

    req = mock_server.last_request
    assert req.raw_path == "/hello?x=1"
    assert req.headers.get("x-harness-addon") == "request-hook"
    assert ("X-Case", "Kept") in req.headers
    mitm.wait_for_log(r"harness-addon saw GET /hello\?x=1", timeout=5)

    with pytest.raises(MitmdumpError, match="never-logged"):
        mitm.wait_for_log("never-logged", timeout=0.2)

    assert mitm.stop() == 0
    assert mitm.returncode == 0
    assert not mitm.is_running()
    assert "harness-addon saw" in mitm.log_text()  # still readable after stop


async def test_mitmdump_reverse_mode(mitm_confdir, mock_server: MockServer, trivial_addon: Path):
    with Mitmdump(
        script=trivial_addon,
        mode=f"reverse:{mock_server.url}",
        confdir=mitm_confdir,
        quiet=True,
    ) as mitm:
        async with mitm.async_client() as c:
            r = await c.post("/rev/path?a=b", json={"k": 1})
        assert r.status_code == 200
        echo = r.json()
        assert echo["path"] == "/rev/path"
        assert echo["raw_query"] == "a=b"
        assert echo["headers"]["x-harness-addon"] == "request-hook"
        assert mock_server.last_request.json() == {"k": 1}
        assert mock_server.last_request.method == "POST"
    assert mitm.returncode == 0


BAD_AT_CONFIGURE = textwrap.dedent(
    """
    from mitmproxy import exceptions

    class Bad:
        def load(self, loader):
            loader.add_option("datakit_config", str, "", "x")

        def configure(self, updated):
            raise exceptions.OptionsError("bad config at configure")

    addons = [Bad()]
    """
)


def test_startup_failures(mitm_confdir, tmp_path: Path):
    """Scripts failing at load / configure: mitmdump exits non-zero by itself.

    The three cases run concurrently to keep the suite fast (each mitmdump
    start costs about 2 s of CPU, mostly importing mitmproxy).
    """
    at_load = tmp_path / "bad_at_load.py"
    at_load.write_text("raise RuntimeError('boom at load')\n")
    at_configure = tmp_path / "bad_at_configure.py"
    at_configure.write_text(BAD_AT_CONFIGURE)
    start_fails = tmp_path / "bad_start.py"
    start_fails.write_text("raise RuntimeError('kaboom while loading')\n")

    def expect_exit(script: Path):
        return run_and_expect_exit(None, script=script, confdir=mitm_confdir, timeout=15)

    def start_and_fail():
        with pytest.raises(MitmdumpError) as info:
            Mitmdump(script=start_fails, confdir=mitm_confdir)
        return str(info.value)

    with ThreadPoolExecutor(3) as pool:
        f_load = pool.submit(expect_exit, at_load)
        f_conf = pool.submit(expect_exit, at_configure)
        f_start = pool.submit(start_and_fail)

        code, output = f_load.result()
        assert code != 0
        assert "boom at load" in output

        code, output = f_conf.result()
        assert code != 0
        assert "bad config at configure" in output

        message = f_start.result()
        assert "kaboom while loading" in message  # the log tail is in the error
        assert "exit" in message and "--- command ---" in message
