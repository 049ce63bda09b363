"""Kong's documented Datakit examples, unchanged except for their URLs,
through a real mitmdump to real local HTTP servers."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.harness import MockServer, Reply

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "kong-examples"


def kong_config(name: str, urls: dict[str, str]) -> dict:
    """The example's `config:` block with third-party URLs replaced."""
    text = (EXAMPLES / name).read_text()
    for old, new in urls.items():
        assert old in text, f"{old} not in {name}"
        text = text.replace(old, new)
    return {"config": yaml.safe_load(text)["config"]}


def write(tmp_path: Path, doc: dict, name: str = "workflow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_combine_two_apis_into_one_response(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/json", Reply(json={"slideshow": {"author": "Yours Truly", "title": "Sample"}}, delay=0.3))
    mock_server.route("GET", "/uuid", Reply(json={"uuid": "0b5f2d7e-4a65-4b2a-9c0e-3f1d2f6a8b91"}, delay=0.3))
    cfg = kong_config("combine-two-apis-into-one-response.yaml", {"https://httpbin.konghq.com": mock_server.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        started = time.perf_counter()
        r = c.get("http://api.test/animal-facts")
        elapsed = time.perf_counter() - started
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"author": "Yours Truly", "uuid": "0b5f2d7e-4a65-4b2a-9c0e-3f1d2f6a8b91"}
    # the two calls overlap: about one delay, not two
    assert elapsed < 0.55, elapsed
    assert sorted(req.path for req in mock_server.requests) == ["/json", "/uuid"]


def test_authenticate_to_a_third_party_service(tmp_path, make_mock_server, start_mitmdump):
    token_api = make_mock_server()
    upstream = make_mock_server()
    token_api.route("POST", "/auth-token", Reply(json={"token_type": "Bearer", "access_token": "tok-123"}))
    cfg = kong_config("authenticate-third-party.yaml", {"https://my-token-service": token_api.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        r = c.get(f"{upstream.url}/orders?api_key=key-42", headers={"X-Client": "one", "Accept": "application/json"})
    assert r.status_code == 200
    (auth_call,) = token_api.requests
    assert auth_call.method == "POST"
    assert auth_call.header("content-type") == "application/x-www-form-urlencoded"
    assert auth_call.body == b"grant_type=client_credentials&client_id=my_client_id"
    assert auth_call.header("x-api-key") == "key-42"
    (proxied,) = upstream.requests
    assert proxied.path == "/orders"
    assert proxied.header("authorization") == "Bearer tok-123"
    # the client's other headers pass through untouched
    assert proxied.header("x-client") == "one"
    assert proxied.header("accept") == "application/json"


def test_authenticate_without_api_key_sends_none(tmp_path, make_mock_server, start_mitmdump):
    token_api, upstream = make_mock_server(), make_mock_server()
    token_api.route("POST", "/auth-token", Reply(json={"token_type": "Bearer", "access_token": "t"}))
    cfg = kong_config("authenticate-third-party.yaml", {"https://my-token-service": token_api.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        assert c.get(f"{upstream.url}/x").status_code == 200
    assert token_api.requests[0].header("x-api-key") == "none"


def test_authenticate_with_dynamic_url(tmp_path, make_mock_server, start_mitmdump):
    token_api, upstream = make_mock_server(), make_mock_server()
    token_api.route("POST", "/tenant-a/auth-token", Reply(json={"token_type": "Bearer", "access_token": "dyn"}))
    cfg = kong_config("authenticate-third-party-with-dynamic-url.yaml", {"https://my-token-service": token_api.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        r = c.get(f"{upstream.url}/data", headers={"path": "tenant-a"})
    assert r.status_code == 200
    assert token_api.requests[0].path == "/tenant-a/auth-token"
    assert token_api.requests[0].body == b"grant_type=client_credentials"
    assert upstream.requests[0].header("authorization") == "Bearer dyn"


def test_manipulate_request_headers(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/", Reply(json={"ok": True}, headers={"X-From-Api": "yes"}))
    cfg = kong_config("manipulate-request-headers.yaml", {"https://example.com": mock_server.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        r = c.get("http://service.test/anything", headers={"X-Custom": "abc"})
    assert r.status_code == 200
    assert r.json() == {"ok": True}
    assert r.headers["x-from-api"] == "yes"
    (call,) = mock_server.requests
    assert call.header("x-api-header-one") == "foo"
    assert call.header("x-api-header-two") == "bar"
    assert call.header("x-request-x-custom") == "abc"
    assert call.header("x-request-host") == "service.test"


def test_clear_headers(tmp_path, mock_server: MockServer, start_mitmdump):
    mock_server.route("GET", "/", Reply(json={"called": True}))
    cfg = kong_config("clear-headers.yaml", {"https://example.com": mock_server.url})
    mitm = start_mitmdump(write(tmp_path, cfg))
    with mitm.client() as c:
        r = c.get("http://service.test/", headers={"X-Ignored": "client-value"})
    assert r.status_code == 200
    assert r.headers["x-add-me"] == "added"
    assert "x-ignored" not in r.headers
    (call,) = mock_server.requests
    assert call.header("x-add-me") == "added"
    assert call.header("x-ignored") is None
