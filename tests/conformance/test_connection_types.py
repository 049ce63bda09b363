"""Kong's rules for typed connections, checked at load and at run time.

Source: Kong's Datakit page, Kong/developer.konghq.com
`app/_kong_plugins/datakit/index.md`, "Validation and connection semantics"
(and "object -> map", "* -> any", "any -> *" below it):

- same type (`string -> string`, `any -> any`): permitted;
- convertible (`string -> number`, `number -> string`, `any -> number`,
  `any -> string`, `any -> object`, `any -> map`): permitted, with a run-time
  check;
- known to be incompatible (for example `number -> object`): refused;
- `object -> map`: refused ("type mismatch: object -> map").

The old proxy-wasm source (Kong/datakit `src/`) has no port types at all, so
the 3.11+ page is the only rule. Load-time cases go through `datakit
validate`; the run-time conversion and check through a real mitmdump.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness import Mitmdump, MockServer
from tests.reliability._support import write_workflows

DATAKIT = Path(sys.executable).parent / "datakit"
CACHE = {"cache": {"strategy": "memory"}}


def cache_node(**inputs: str) -> dict:
    return {"name": "C", "type": "cache", "inputs": {"key": "request.path", **inputs}}


JQ = {"name": "J", "type": "jq", "jq": "."}

# (case id, nodes, None if permitted else the refusal's text)
CASES = [
    ("string->string", [cache_node(key="request.method")], None),
    ("number->string", [cache_node(key="request.port")], None),
    ("string->number", [cache_node(ttl="request.path")], None),
    ("number->number", [cache_node(ttl="request.port")], None),
    ("any->number", [JQ, cache_node(ttl="J")], None),
    ("any->string", [JQ, cache_node(key="J")], None),
    ("any->object", [JQ, {"name": "X", "type": "call", "url": "http://127.0.0.1:9/", "input": "J"}], None),
    ("any->map", [{**JQ, "output": "service_request.headers"}], None),
    ("number->any", [{**JQ, "input": "request.port"}], None),
    ("object->any", [{**JQ, "input": "request"}], None),
    ("object->object", [{"name": "X", "type": "call", "url": "http://127.0.0.1:9/", "input": "request"}], None),
    ("number->object", [{"name": "X", "type": "call", "url": "http://127.0.0.1:9/", "input": "request.port"}],
     "type mismatch: number -> object"),
    ("object->map", [{"name": "X", "type": "call", "url": "http://127.0.0.1:9/", "output": "service_request.headers"}],
     "type mismatch: object -> map"),
    ("map->string", [cache_node(key="request.headers")], "type mismatch: map -> string"),
    ("map->number", [cache_node(ttl="request.query")], "type mismatch: map -> number"),
    ("static number->string", [{"name": "S", "type": "static", "values": {"k": 7}}, cache_node(key="S.k")], None),
    ("static non-numeric string->number", [{"name": "S", "type": "static", "values": {"t": "soon"}}, cache_node(ttl="S.t")],
     "static value for 'ttl' is not a number"),
]


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """One `datakit validate` run per case (each file on its own)."""
    directory = tmp_path_factory.mktemp("connection-types")
    results = {}
    for i, (case_id, nodes, _) in enumerate(CASES):
        path = directory / f"case{i:02d}.yaml"
        path.write_text(yaml.safe_dump({"nodes": nodes, "resources": CACHE}, sort_keys=False))
        results[case_id] = subprocess.run([str(DATAKIT), "validate", str(path)], capture_output=True, text=True, timeout=60)
    return results


@pytest.mark.parametrize(("case_id", "refusal"), [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_load_time_rule(validated, case_id, refusal):
    proc = validated[case_id]
    output = proc.stdout + proc.stderr
    if refusal is None:
        assert proc.returncode == 0, output
    else:
        assert proc.returncode == 1, output
        assert refusal in output and "invalid connection" in output, output


# -- run time: the conversion and the check, through a real mitmdump -----------


def workflows() -> dict[str, dict]:
    def at(path: str, *nodes: dict) -> dict:
        return {"match": {"paths": [path]}, "debug": True, "resources": CACHE, "nodes": list(nodes)}

    return {
        # number -> string: the port becomes the cache key "8080"-like text
        "num-to-str": at(
            "/num-to-str",
            {"name": "DATA", "type": "static", "values": {"v": "stored"}},
            {"name": "C", "type": "cache", "inputs": {"key": "request.port", "data": "DATA.v"}},
            {"name": "GET", "type": "cache", "inputs": {"key": "K"}},
            # waits for the store, then spells the key itself
            {"name": "K", "type": "jq", "inputs": {"port": "request.port", "stored": "C.stored"}, "jq": ".port | tostring"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "GET.data"}},
        ),
        # string -> number: a path is not a number, so the ttl input fails when it runs
        "str-to-num": at(
            "/str-to-num",
            {"name": "C", "type": "cache", "inputs": {"key": "request.path", "ttl": "request.path", "data": "request.path"}},
            {"name": "EXIT", "type": "exit", "status": 200},
        ),
        "health": at("/health", {"name": "EXIT", "type": "exit", "status": 204}),
    }


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir) -> Iterator[tuple[Mitmdump, MockServer]]:
    cfg = write_workflows(tmp_path_factory.mktemp("connection-types-run"), workflows())
    with MockServer() as mock, Mitmdump(cfg, confdir=mitm_confdir, quiet=True) as mitm:
        yield mitm, mock


def test_number_to_string_is_converted_when_it_runs(proxy):
    mitm, mock = proxy
    with mitm.client(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
        r = client.get(f"{mock.url}/num-to-str")
    assert r.status_code == 200, r.text
    # stored under the port converted to text, found again under jq's `tostring` of it
    assert r.text == "stored"


def test_string_to_number_is_checked_when_it_runs(proxy):
    mitm, mock = proxy
    with mitm.client(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
        r = client.get(f"{mock.url}/str-to-num")
        assert r.status_code == 500, r.text
        body = r.json()
        assert body["message"] == "node execution error"
        assert body["node"] == {"index": 1, "name": "C", "type": "cache"}
        assert "input 'ttl' of node 'C' expects a number" in body["error"]
        assert client.get(f"{mock.url}/health").status_code == 204  # still serving
    assert "expects a number" in mitm.log_text()
