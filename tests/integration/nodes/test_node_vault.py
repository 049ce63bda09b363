"""The implicit `vault` node: env-vault secrets reach a call, and are redacted in traces, errors and the log.

Through a real mitmdump with real HTTP (the fixtures: conftest.py here)."""

from __future__ import annotations

import json

from tests.harness import Reply
from tests.integration.nodes._support import DB_PASSWORD, HMAC_SECRET, TOKEN_SECRET, TRACE


def _no_secret(text: str) -> None:
    for secret in (TOKEN_SECRET, DB_PASSWORD, HMAC_SECRET):
        assert secret not in text


def test_vault_env_and_env_field_reach_the_call(c, api):
    api.route("GET", "/vault/login", Reply(json={"logged_in": True}))
    r = c.get(f"{api.url}/vault/x")
    assert r.status_code == 200, r.text
    assert r.json() == {"logged_in": True}
    call = api.requests_for("/vault/login")[-1]
    assert call.header("x-token") == TOKEN_SECRET
    assert call.header("x-password") == DB_PASSWORD  # {vault://env/DK_IT_CREDS/password}
    assert call.header("x-user") == "svc-user"  # {vault://env/dk-it-creds/user}: Kong's name mapping


def test_vault_secrets_are_redacted_in_the_trace(c, api):
    api.route("GET", "/vault/login", Reply(json={"logged_in": True}))
    r = c.get(f"{api.url}/vault/x", headers=TRACE)
    assert r.status_code == 200
    text = r.text
    _no_secret(text)
    report = r.json()
    assert report["status"] == "PLAN_COMPLETE"
    # the vault node's outputs and every value derived from them
    vault_done = next(e for e in report["events"] if e["name"] == "vault" and e["action"] == "complete")
    assert {v["key"]: v["value"] for v in vault_done["values"]} == {
        "token": "[REDACTED]",
        "password": "[REDACTED]",
        "user": "[REDACTED]",
    }
    headers_done = next(e for e in report["events"] if e["name"] == "HEADERS" and e["action"] == "complete")
    # built from secrets: the whole value is redacted (taint.py), not only
    # the literal secret in it
    assert headers_done["values"][0]["value"] == "[REDACTED]"
    call_run = next(e for e in report["events"] if e["name"] == "CALL" and e["action"] == "run")
    assert "[REDACTED]" in json.dumps(call_run["values"])
    # the call still got the real values
    assert api.requests_for("/vault/login")[-1].header("x-token") == TOKEN_SECRET


def test_vault_secrets_are_redacted_in_errors_and_the_log(c, api, proxy):
    since = proxy.log_offset()
    r = c.get(f"{api.url}/vault-fail/x")
    assert r.status_code == 500
    body = r.json()
    assert body["node"]["name"] == "CHECK"
    assert "token rejected: [REDACTED]" in body["error"]
    _no_secret(r.text)
    report = c.get(f"{api.url}/vault-fail/x", headers=TRACE).json()
    assert report["status"] == "PLAN_ERROR"
    (check,) = [n for n in report["nodes"] if n["name"] == "CHECK"]
    assert check["status"] == "NODE_ERROR" and "token rejected: [REDACTED]" in check["error"]
    _no_secret(json.dumps(report))
    proxy.wait_for_log(r"failed at node 'CHECK'.*token rejected: \[REDACTED\]", since=since)
    _no_secret(proxy.log_text())
