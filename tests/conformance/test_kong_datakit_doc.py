"""Kong/datakit `docs/datakit.md` "The execution model": the statements the
3.11+ page still makes (Kong/developer.konghq.com
`app/_kong_plugins/datakit/index.md`, "a node doesn't run until its
dependencies are satisfied"), through a real mitmdump.

The rest of docs/datakit.md is the older design (the `handlebars` node, the
call `error` port, `timeout` in seconds, lower-cased header names) or is
tested elsewhere (one link per input: test_index_nodes.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conformance._support import serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer, Reply

DATAKIT_MD = "Kong/datakit docs/datakit.md"


def workflows(api: MockServer) -> dict:
    w = workflow
    return {
        "fan-out": w("fan-out", [
            {"name": "CALL", "type": "call", "url": f"{api.url}/counted"},
            {"name": "J1", "type": "jq", "input": "CALL.body", "jq": ".n"},
            {"name": "J2", "type": "jq", "input": "CALL.body", "jq": ".n + 1"},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "JOIN"}},
            {"name": "JOIN", "type": "jq", "inputs": {"a": "J1", "b": "J2", "again": "CALL.body"}, "jq": "."},
        ]),
        "wait-all": w("wait-all", [
            {"name": "JOIN", "type": "jq", "inputs": {"slow": "SLOW.body", "fast": "FAST.body"}, "jq": "[.slow.who, .fast.who]"},
            {"name": "SLOW", "type": "call", "url": f"{api.url}/slow"},
            {"name": "FAST", "type": "call", "url": f"{api.url}/fast"},
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "JOIN"}},
        ]),
    }


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("GET", "/counted", lambda req: Reply(json={"n": 1}))
        server.route("GET", "/slow", lambda req: Reply(json={"who": "slow"}, delay=0.6))
        server.route("GET", "/fast", lambda req: Reply(json={"who": "fast"}))
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    yield from serve(write_workflows(tmp_path_factory.mktemp("datakit-md"), workflows(api)), mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def _count(api: MockServer, path: str) -> int:
    return len(api.requests_for(path))


def test_a_node_triggers_at_most_once_and_feeds_several_nodes(c, api):
    """Kong/datakit docs/datakit.md: "An output port can be linked to multiple
    nodes" and "Each node triggers at most once": CALL feeds J1, J2 and JOIN,
    and its request is sent once per client request."""
    before = _count(api, "/counted")
    r = c.get(f"{api.url}/fan-out/x")
    assert r.status_code == 200, r.text
    assert r.json() == {"a": 1, "b": 2, "again": {"n": 1}}
    assert _count(api, "/counted") - before == 1


def test_a_node_waits_for_all_its_connected_inputs(c, api):
    """Kong/datakit docs/datakit.md: "A node only triggers when data is
    available to all its connected input ports" (index.md: "a node doesn't
    run until its dependencies are satisfied ... nodes don't even need to be
    in the right order"): JOIN, listed first, sees the slow call's answer."""
    r = c.get(f"{api.url}/wait-all/x")
    assert r.status_code == 200, r.text
    assert r.json() == ["slow", "fast"]


