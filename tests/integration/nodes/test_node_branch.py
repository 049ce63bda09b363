"""`branch`: the `then` or the `else` nodes run, the others (nested branches too) are skipped; a non-boolean input is a node error.

Through a real mitmdump with real HTTP (the fixtures: conftest.py here)."""

from __future__ import annotations

import pytest

from tests.harness import Reply
from tests.integration.nodes._support import TRACE, actions, statuses


def test_branch_then_skips_else_and_the_nested_branch(c, api):
    r = c.get(f"{api.url}/branch/x", headers={"x-flag": "yes"})
    assert r.status_code == 200
    assert r.json() == {"result": "then"}
    assert api.requests_for("/branch/a") == []  # the nested branch's call never ran

    report = c.get(f"{api.url}/branch/x", headers={"x-flag": "yes", **TRACE}).json()
    assert report["status"] == "PLAN_COMPLETE"
    s = statuses(report)
    assert s["FLAG"] == s["OUTER"] == s["YES_EXIT"] == "NODE_COMPLETE"
    # the else list, the nested branch's own lists, and what needs their output
    for name in ("INNER_FLAG", "INNER", "CALL_A", "EXIT_A", "AFTER_A", "EXIT_B"):
        assert s[name] == "NODE_SKIPPED", (name, s)
        assert actions(report, name) == ["skip"], name
    assert api.requests_for("/branch/a") == []


def test_nested_branch_else_then(c, api):
    api.route("GET", "/branch/a", Reply(json={"from": "api-a"}))
    before = len(api.requests_for("/branch/a"))
    r = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "yes"})
    assert r.status_code == 201
    assert r.json() == {"from": "api-a"}
    assert len(api.requests_for("/branch/a")) == before + 1

    report = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "yes", **TRACE}).json()
    s = statuses(report)
    assert s["YES_EXIT"] == s["EXIT_B"] == "NODE_SKIPPED"
    assert s["INNER"] == s["CALL_A"] == s["EXIT_A"] == s["AFTER_A"] == "NODE_COMPLETE"


def test_nested_branch_else_else(c, api):
    before = len(api.requests_for("/branch/a"))
    r = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "no"})
    assert r.status_code == 202
    assert r.json() == {"result": "inner-else"}
    report = c.get(f"{api.url}/branch/x", headers={"x-flag": "no", "x-inner": "no", **TRACE}).json()
    s = statuses(report)
    assert s["YES_EXIT"] == s["CALL_A"] == s["EXIT_A"] == s["AFTER_A"] == "NODE_SKIPPED"
    assert s["INNER_FLAG"] == s["INNER"] == s["EXIT_B"] == "NODE_COMPLETE"
    assert len(api.requests_for("/branch/a")) == before  # skipped: never called


@pytest.mark.parametrize("flag, kind", [("maybe", "string"), (None, "null")])
def test_branch_non_boolean_input_is_a_node_error(c, api, flag, kind):
    headers = {} if flag is None else {"x-flag": flag}
    r = c.get(f"{api.url}/branch/x", headers=headers)
    assert r.status_code == 500
    body = r.json()
    assert body["message"] == "node execution error"
    assert body["node"]["name"] == "OUTER" and body["node"]["type"] == "branch"
    assert "boolean" in body["error"] and kind in body["error"]
    report = c.get(f"{api.url}/branch/x", headers={**headers, **TRACE}).json()
    assert report["status"] == "PLAN_ERROR"
    assert statuses(report)["OUTER"] == "NODE_ERROR"
