"""More Datakit entries of Kong Gateway's changelog
(app/_data/changelogs/gateway.json) than test_gateway_changelog.py covers,
through a real mitmdump: clearing headers with a null value, `inputs` with
a null value, and an invalid plugin instance among valid ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conformance._support import serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer, RecordedRequest, Reply

GATEWAY_CHANGELOG = "app/_data/changelogs/gateway.json"


def workflows() -> dict:
    w = workflow
    return {
        "clear-request": w("clear-request", [
            {"name": "H", "type": "jq", "input": "request.headers", "jq": '{"x-remove-me": null, "x-add-me": "added"}',
             "output": "service_request.headers"}]),
        "clear-response": w("clear-response", [
            {"name": "H", "type": "static", "values": {"X-Upstream-Secret": None, "X-Added": "yes"},
             "output": "response.headers"}]),
        "null-input": w("null-input", [
            {"name": "B", "type": "static", "values": {"ok": True}},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "B", "headers": None}}]),
    }


def echo(req: RecordedRequest) -> Reply:
    return Reply(json={"headers": dict(req.headers.items())}, headers={"X-Upstream-Secret": "s", "X-Kept": "k"})


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", echo)
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    yield from serve(write_workflows(tmp_path_factory.mktemp("changelog-more"), workflows()), mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def test_a_null_header_value_clears_it_from_the_service_request(c, api):
    """app/_data/changelogs/gateway.json 3.13.0.0 "Added support for clearing headers from the
    service_request and response nodes" (example clear-headers.yaml: "To
    clear a header, set its value to `null`")."""
    sent = c.get(f"{api.url}/clear-request/x", headers={"X-Remove-Me": "client", "X-Other": "o"}).json()["headers"]
    headers = {k.lower(): v for k, v in sent.items()}
    assert "x-remove-me" not in headers
    assert headers.get("x-add-me") == "added"
    assert headers.get("x-other") == "o"  # the headers not named stay


def test_a_null_header_value_clears_it_from_the_response(c, api):
    """app/_data/changelogs/gateway.json 3.13.0.0 "clearing headers from the ... response
    node": the upstream's header named with a null value does not reach
    the client; the others stay."""
    r = c.get(f"{api.url}/clear-response/x")
    assert "x-upstream-secret" not in r.headers
    assert (r.headers.get("x-added"), r.headers.get("x-kept")) == ("yes", "k")


def test_inputs_with_a_null_value_load_and_run(c, api):
    """app/_data/changelogs/gateway.json 3.14.0.8 / 3.15.0.1 "a datakit plugin whose node
    `inputs` contained a null value" is a config Kong accepts (the fix is to
    its compatibility checker): a null input is an unconnected one."""
    r = c.get(f"{api.url}/null-input/x")
    assert (r.status_code, r.json()) == (200, {"ok": True})


DECK = """\
_format_version: "3.0"
services:
  - name: good
    url: {api}
    routes: [{{name: good, paths: [/good]}}]
    plugins:
      - name: datakit
        config:
          nodes:
            - {{name: V, type: static, values: {{ok: true}}}}
            - {{name: EXIT, type: exit, inputs: {{body: V}}}}
  - name: bad
    url: {api}
    routes: [{{name: bad, paths: [/bad]}}]
    plugins:
      - name: datakit
        config:
          nodes:
            - {{name: BROKEN, type: jq, input: NOWHERE, jq: .}}
"""


def test_an_invalid_plugin_instance_refuses_the_file_naming_it(tmp_path, api):
    """app/_data/changelogs/gateway.json 3.11.0.5 / 3.12.0.0 "Fixed an issue where an
    invalid plugin instance could affect other plugins": Kong refuses the
    invalid instance at config time; a declarative file holding one is
    refused whole, as Kong's DB-less `/config` refuses it. The error names
    the bad plugin's place and node, so nothing half-loaded runs
    (docs/coming-from-kong.md)."""
    deck = tmp_path / "kong.yaml"
    deck.write_text(DECK.format(api=api.url))
    code, output = Mitmdump.run_and_expect_exit(deck)
    assert code != 0
    assert "services.1.plugins.0" in output and "'BROKEN'" in output and "NOWHERE" in output


def test_the_valid_plugin_alone_loads(tmp_path, mitm_confdir, api):
    """app/_data/changelogs/gateway.json 3.11.0.5: the other plugin, on its own, is fine (the
    refusal above is the bad instance's, not a side effect on the good one)."""
    deck = tmp_path / "kong.yaml"
    deck.write_text(DECK.format(api=api.url).split("  - name: bad")[0])
    with Mitmdump(deck, confdir=mitm_confdir, quiet=True) as mitm, mitm.client() as c:
        assert c.get("http://gw.test/good").json() == {"ok": True}
