"""The last pages of Kong/developer.konghq.com that mention Datakit and
that no other conformance test cites: each Datakit statement that can be
checked here, through a real mitmdump or `datakit validate`.

- app/_kong_plugins/ai-sanitizer/index.md (FAQ): Datakit can send the
  request payload to a custom PII service and forward the sanitized
  payload upstream.
- app/gateway/plugins/expressions.md (FAQ): Datakit can parse the body,
  extract a value and store it in `kong.ctx.shared` (the plugin condition
  that reads it is Kong's plugin-conditions feature, not Datakit's).
- app/_data/plugins/priorities/3.15.json: Datakit's priority is 810, below
  e.g. pre-function's 1000000; here only Datakit runs, so there is nothing
  to order (docs/coming-from-kong.md "Plugin ordering").
- app/gateway/breaking-changes.md "Datakit plugin" (3.11): Datakit is a
  bundled plugin that needs no WASM, and no longer supports `handlebars`.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conformance._support import serve, workflow, write_workflows
from tests.conformance.test_documented_deviations import validate
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply

AI_SANITIZER = "app/_kong_plugins/ai-sanitizer/index.md"
EXPRESSIONS = "app/gateway/plugins/expressions.md"
PRIORITIES = "app/_data/plugins/priorities/3.15.json"
BREAKING = "app/gateway/breaking-changes.md"


def sanitize(req: RecordedRequest) -> Reply:
    """A stand-in PII service: masks every `email` field."""
    doc = req.json()
    return Reply(json={k: ("<EMAIL>" if k == "email" else v) for k, v in doc.items()})


def workflows(api: str) -> dict:
    return {
        # AI_SANITIZER: 1. send the payload to the PII service, 2. receive the
        # sanitized answer, 3. forward the transformed payload upstream
        "pii": workflow("pii", [
            {"name": "PII", "type": "call", "method": "POST", "url": f"{api}/pii/sanitize",
             "inputs": {"body": "request.body"}},
            {"name": "FORWARD", "type": "jq", "input": "PII.body", "jq": ".", "output": "service_request.body"},
        ]),
        # EXPRESSIONS: parse the body, extract a value, store it in kong.ctx.shared
        "ctx-from-body": workflow("ctx-from-body", [
            {"name": "EXTRACT", "type": "jq", "input": "request.body", "jq": ".customer.tier"},
            {"name": "STORE", "type": "property", "property": "kong.ctx.shared.tier", "input": "EXTRACT"},
            {"name": "ANSWERED", "type": "jq", "input": "service_response.status", "jq": "true"},
            {"name": "LATER", "type": "branch", "input": "ANSWERED", "then": ["READ", "OUT"]},
            {"name": "READ", "type": "property", "property": "kong.ctx.shared.tier"},
            {"name": "OUT", "type": "jq", "input": "READ", "jq": '{"x-tier": .}', "output": "response.headers"},
        ]),
    }


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", lambda req: Reply(json={"upstream_got": req.json() if req.body else None}))
        server.route("POST", "/pii/sanitize", sanitize)
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    yield from serve(write_workflows(tmp_path_factory.mktemp("pages-more"), workflows(api.url)), mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def test_a_custom_pii_service_sanitizes_the_payload_before_the_upstream(c, api):
    """AI_SANITIZER FAQ "Can I use a custom PII anonymization service": the
    Datakit plugin sends the request payload to the PII service, receives
    the sanitized response and forwards it upstream."""
    api.clear()
    r = c.post(f"{api.url}/pii/x", json={"email": "a@example.com", "text": "hello"})
    assert r.status_code == 200
    assert r.json() == {"upstream_got": {"email": "<EMAIL>", "text": "hello"}}
    paths = [q.path for q in api.wait_for_requests(2)]
    assert paths == ["/pii/sanitize", "/pii/x"]
    assert api.requests_for("/pii/sanitize")[0].json()["email"] == "a@example.com"


def test_a_body_value_is_stored_in_kong_ctx_shared(c, api):
    """EXPRESSIONS FAQ "Can I use a value from the request body in a
    condition": Datakit parses the body, extracts the value and stores it
    in `kong.ctx.shared`, where a later reader finds it."""
    r = c.post(f"{api.url}/ctx-from-body/x", json={"customer": {"tier": "gold"}})
    assert r.status_code == 200
    assert r.headers["x-tier"] == "gold"


DECK = """\
_format_version: "3.0"
services:
  - name: prio
    url: {api}
    routes: [{{name: prio, paths: [/prio]}}]
    plugins:
      - name: pre-function
        config:
          access: ["kong.response.exit(418)"]
      - name: datakit
        config:
          nodes:
            - {{name: V, type: static, values: {{ran: datakit}}}}
            - {{name: EXIT, type: exit, inputs: {{body: V}}}}
"""


def test_only_datakit_runs_so_priority_orders_nothing(tmp_path, mitm_confdir, api):
    """PRIORITIES: datakit 810, pre-function 1000000, so Kong runs
    pre-function first and its exit(418) answers. Here only Datakit runs
    (mitmproxy cannot run Kong's Lua plugins): the datakit plugin answers
    and the log names pre-function as not run (docs/coming-from-kong.md
    "Plugin ordering")."""
    deck = tmp_path / "kong.yaml"
    deck.write_text(DECK.format(api=api.url))
    with Mitmdump(deck, confdir=mitm_confdir) as mitm, mitm.client() as client:
        mitm.wait_for_log(r"plugins not run here \(only datakit runs\): [^\n]*pre-function", timeout=10)
        r = client.get("http://gw.test/prio")
    assert (r.status_code, r.json()) == (200, {"ran": "datakit"})


def test_the_handlebars_node_type_is_refused(tmp_path):
    """BREAKING "Datakit plugin" (3.11.0.0): "The Datakit plugin no longer
    supports the `handlebars` node type"."""
    proc = validate(tmp_path, {"nodes": [{"name": "H", "type": "handlebars", "template": "{{a}}"}]})
    assert proc.returncode != 0
    assert "field 'type': unknown node type 'handlebars'" in proc.stdout


def test_the_plugin_runs_without_any_wasm_setting(tmp_path, mitm_confdir, api):
    """BREAKING "Datakit plugin" (3.11.0.0): bundled as a Lua plugin, enabled
    "just like any other bundled plugin", no WASM filter chain: a plain
    `plugins: [{name: datakit}]` entity runs."""
    deck = tmp_path / "kong.yaml"
    deck.write_text(DECK.format(api=api.url).replace(
        '      - name: pre-function\n        config:\n          access: ["kong.response.exit(418)"]\n', ""))
    with Mitmdump(deck, confdir=mitm_confdir, quiet=True) as mitm, mitm.client() as client:
        assert client.get("http://gw.test/prio").json() == {"ran": "datakit"}
