"""Kong conformance of app/_landing_pages/gateway/datakit.yaml (the Datakit
landing page): its claims about node types and node behaviour that can be
checked, through a real mitmdump (config rules through the loader, as
`datakit validate` runs them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mitmdatakit.config import load_document
from tests.conformance._support import TRACE, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply

LANDING = "app/_landing_pages/gateway/datakit.yaml"
SECRET = "s3cr3t-landing"
NODE_TYPES = ["branch", "cache", "call", "jq", "exit", "property", "static", "json_to_xml", "xml_to_json",
              "jwt_decode", "jwt_sign", "jwt_verify"]


def one_of_each(api: str) -> list[dict[str, Any]]:
    """A minimal valid node of each type the page lists."""
    return [
        {"name": "S", "type": "static", "values": {"ok": True, "xml": "<a>1</a>", "token": "x.y.z", "key": "k" * 32}},
        {"name": "B", "type": "branch", "input": "S.ok", "then": ["J"]},
        {"name": "J", "type": "jq", "input": "S", "jq": "."},
        {"name": "C", "type": "cache", "inputs": {"key": "S.token"}},
        {"name": "CALL", "type": "call", "url": f"{api}/cat"},
        {"name": "P", "type": "property", "property": "kong.version"},
        {"name": "J2X", "type": "json_to_xml", "input": "S"},
        {"name": "X2J", "type": "xml_to_json", "input": "S.xml", "attributes_name_prefix": "@"},
        {"name": "JD", "type": "jwt_decode", "input": "S.token"},
        {"name": "JS", "type": "jwt_sign", "algorithm": "HS256", "inputs": {"claims": "S", "key": "S.key"}},
        {"name": "JV", "type": "jwt_verify", "inputs": {"token": "JS.token", "key": "S.key"}},
        {"name": "E", "type": "exit", "status": 200, "inputs": {"body": "J"}},
    ]


def workflows(cat: str, dog: str, api: str) -> dict[str, dict[str, Any]]:
    w = workflow
    return {
        "animal-fact": w("animal-fact", [
            {"name": "CAT", "type": "call", "url": f"{cat}/fact"},
            {"name": "DOG", "type": "call", "url": f"{dog}/fact"},
            {"name": "MERGE", "type": "jq", "inputs": {"cat": "CAT.body", "dog": "DOG.body"},
             "jq": "{cat_fact: .cat.fact, dog_fact: .dog.fact, cat_saw_dog_request: .cat.saw_dog_request}"},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "MERGE"}}]),
        "update-headers": w("update-headers", [
            {"name": "H", "type": "jq", "input": "request.headers",
             "jq": '{"x-tenant": (.["x-user"] // "anonymous" | ascii_upcase)}', "output": "service_request.headers"}]),
        "custom-response": w("custom-response", [
            {"name": "BODY", "type": "static", "values": {"served_by": "gateway"}},
            {"name": "EXIT", "type": "exit", "status": 203, "inputs": {"body": "BODY"}}]),
        "vault-secret": w("vault-secret", [
            {"name": "AUTH", "type": "jq", "inputs": {"token": "vault.token"}, "jq": '{authorization: ("Bearer " + .token)}',
             "output": "service_request.headers"}], resources={"vault": {"token": "{vault://env/landing-token}"}}),
        "debug-on": w("debug-on", [
            {"name": "FAILING", "type": "call", "url": f"{api}/forbidden"},
            {"name": "AFTER", "type": "jq", "input": "FAILING.body", "jq": "."},
            {"name": "FIRST", "type": "static", "values": {"a": 1}}], debug=True),
        "debug-off": w("debug-off", [
            {"name": "FAILING", "type": "call", "url": f"{api}/forbidden"}]),
    }


def slow_cat(dog: MockServer):
    """The cat API answers once the dog API has been asked too (or after 5 s):
    it can only see that request if both calls were in flight together."""
    def answer(req: RecordedRequest) -> Reply:
        deadline = time.monotonic() + 5
        while not dog.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        return Reply(json={"fact": "Cats sleep 16 hours a day.", "saw_dog_request": bool(dog.requests)})
    return answer


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MockServer, MockServer, MockServer]]:
    with MockServer() as cat, MockServer() as dog, MockServer() as api:
        dog.route("GET", "/fact", Reply(json={"fact": "Dogs have about 1,700 taste buds."}))
        cat.route("GET", "/fact", slow_cat(dog))
        api.route("*", "/*", lambda req: Reply(json={"headers": dict(req.headers.items())}))
        api.route("GET", "/forbidden", Reply(status=403, json={"message": "no"}))
        yield cat, dog, api


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, servers) -> Iterator[Mitmdump]:
    cat, dog, api = servers
    directory = write_workflows(tmp_path_factory.mktemp("landing"), workflows(cat.url, dog.url, api.url))
    yield from serve(directory, mitm_confdir, env={"LANDING_TOKEN": SECRET})


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def test_every_listed_node_type_exists():
    """app/_landing_pages/gateway/datakit.yaml "Node types": branch, cache, call, jq, exit,
    property, static, json_to_xml, xml_to_json, jwt_decode, jwt_sign,
    jwt_verify form the building blocks of a workflow."""
    wf = load_document({"resources": {"cache": {"strategy": "memory"}}, "nodes": one_of_each("http://api.test")})
    assert sorted({n.spec.type for n in wf.plan.nodes if n.spec.index is not None}) == sorted(NODE_TYPES)


def test_the_implicit_nodes_it_names_exist(monkeypatch):
    """app/_landing_pages/gateway/datakit.yaml "Node types": "implicit nodes such as `request`,
    `response`, `vault`, and `service_request`, which represent gateway
    lifecycle events"."""
    monkeypatch.setenv("X", "secret")
    wf = load_document({"resources": {"vault": {"v": "{vault://env/x}"}}, "nodes": [
        {"name": "J", "type": "jq", "inputs": {"a": "request.body", "b": "vault.v"}, "jq": ".",
         "outputs": {"$self": "service_request.body"}},
        {"name": "K", "type": "jq", "input": "J", "jq": ".", "output": "response.body"}]})
    implicit = {n.spec.type for n in wf.plan.nodes if n.spec.index is None}
    assert {"request", "response", "vault", "service_request"} <= implicit


def test_two_api_responses_are_fetched_together_and_merged(c, servers):
    """app/_landing_pages/gateway/datakit.yaml "How Datakit works": for `/animal-fact`
    Datakit fetches the cat fact and the dog fact (both requests out before
    either answer comes back), then "Merge & return combined JSON response"."""
    cat, _, _ = servers
    r = c.get(f"{cat.url}/animal-fact/x")
    assert r.status_code == 200
    assert r.json() == {"cat_fact": "Cats sleep 16 hours a day.", "dog_fact": "Dogs have about 1,700 taste buds.",
                        "cat_saw_dog_request": True}


def test_request_headers_are_updated_dynamically(c, servers):
    """app/_landing_pages/gateway/datakit.yaml "Examples include: Dynamically updating request headers"."""
    _, _, api = servers
    r = c.get(f"{api.url}/update-headers/x", headers={"X-User": "alice"})
    assert r.json()["headers"]["x-tenant"] == "ALICE"


def test_a_custom_response_comes_from_the_gateway(c, servers):
    """app/_landing_pages/gateway/datakit.yaml: "Return custom responses directly to clients"."""
    _, _, api = servers
    before = len(api.requests)
    r = c.get(f"{api.url}/custom-response/x")
    assert (r.status_code, r.json()) == (203, {"served_by": "gateway"})
    assert len(api.requests) == before


def test_a_vault_secret_is_injected(c, servers):
    """app/_landing_pages/gateway/datakit.yaml "Examples include: Injecting data from Vault secrets"."""
    _, _, api = servers
    r = c.get(f"{api.url}/vault-secret/x")
    assert r.json()["headers"]["authorization"] == f"Bearer {SECRET}"


def test_debug_exposes_node_execution_errors(c, servers):
    """app/_landing_pages/gateway/datakit.yaml "Debugging and development": "Enable the
    `debug` option to expose node execution errors in responses"; without it
    the client learns nothing about the node."""
    _, _, api = servers
    on = c.get(f"{api.url}/debug-on/x")
    off = c.get(f"{api.url}/debug-off/x")
    assert on.status_code == off.status_code == 500
    assert on.json()["node"]["name"] == "FAILING"
    assert "403" in on.text
    assert "FAILING" not in off.text and "403" not in off.text


def test_the_trace_has_timing_dependencies_and_failures(c, servers):
    """app/_landing_pages/gateway/datakit.yaml: "Add the `X-DataKit-Debug-Trace` header to
    get a full node execution trace, including timing, dependencies, and
    failures"; "Trace reports include node status (`NODE_ERROR`,
    `NODE_COMPLETE`, etc.) and dependency chains"."""
    _, _, api = servers
    report = c.get(f"{api.url}/debug-on/x", headers=TRACE).json()
    status = {n["name"]: n["status"] for n in report["nodes"]}
    assert status["FAILING"] == "NODE_ERROR"
    assert status["FIRST"] == "NODE_COMPLETE"
    assert status["AFTER"] != "NODE_COMPLETE"  # depends on the failed node
    assert report["duration"] >= 0 and all("at" in e for e in report["events"])
    (fail,) = [e for e in report["events"] if e["name"] == "FAILING" and e["action"] == "fail"]
    assert "403" in str(fail["values"])
