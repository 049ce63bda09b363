"""The entries of docs/coming-from-kong.md that had no test of their own,
each shown through a real mitmdump or `datakit validate`.

Every test names the doc entry it shows and the Kong source it differs from
or follows (paths in Kong/developer.konghq.com, see `_support`): INDEX is the
plugin page, SCHEMA the 3.15 plugin schema.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conformance._support import INDEX, SCHEMA, TRACE, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer
from tests.harness.mock_server import Reply

DATAKIT = Path(sys.executable).parent / "datakit"
assert INDEX and SCHEMA  # the sources the docstrings cite


def workflows(api: str) -> dict[str, dict[str, Any]]:
    return {
        # "Execution": an exit does not stop the phase (a call beside it is sent)
        "exit-beside": workflow("exit-beside", [
            {"name": "EXIT", "type": "exit", "status": 201},
            {"name": "BESIDE", "type": "call", "url": f"{api}/beside"},
        ]),
        # "Execution": kong.response.status applies last, after an exit's status
        "status-last": workflow("status-last", [
            {"name": "EXIT", "type": "exit", "status": 200},
            {"name": "S", "type": "jq", "jq": "418"},
            {"name": "SET", "type": "property", "property": "kong.response.status", "input": "S"},
        ]),
        # "Execution": an implicit sink takes the inputs that were not skipped
        "partial": workflow("partial", [
            {"name": "NO", "type": "jq", "jq": "false"},
            {"name": "BR", "type": "branch", "input": "NO", "then": ["HEADERS"]},
            {"name": "HEADERS", "type": "static", "values": {"x-skipped": "yes"}, "output": "response.headers"},
            {"name": "BODY", "type": "static", "values": {"kept": True}, "output": "response.body"},
        ]),
        # "Nodes", call: a redirect is not followed; a 3xx is a failure
        "redirect": workflow("redirect", [
            {"name": "CALL", "type": "call", "url": f"{api}/moved"},
        ], debug=True),
        # "Nodes", jq: whole output numbers are integers
        "jq-number": workflow("jq-number", [
            {"name": "HALF", "type": "jq", "jq": "{n: (4 / 2), f: 2.5}"},
            {"name": "EXIT", "type": "exit", "inputs": {"body": "HALF"}},
        ]),
        # "The debug trace": the request headers' value is shown
        "trace-headers": workflow("trace-headers", [
            {"name": "H", "type": "jq", "input": "request.headers", "jq": '.["x-probe"]'},
        ], debug=True),
    }


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", Reply(json={"upstream": True}))
        server.route("GET", "/moved", Reply(status=302, headers={"Location": f"{server.url}/target"}))
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    directory = write_workflows(tmp_path_factory.mktemp("deviations"), workflows(api.url))
    # "Where a workflow runs": two workflows matching the same flow
    for name in ("20-second", "10-first"):
        doc = {"match": {"paths": ["/both/"]}, "nodes": [
            {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "WHO"}},
            {"name": "WHO", "type": "static", "values": {"file": name}},
        ]}
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    yield from serve(directory, mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def validate(tmp_path: Path, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run([str(DATAKIT), "validate", str(path)], capture_output=True, text=True, timeout=60)


# -- Where a workflow runs ---------------------------------------------------------


def test_one_workflow_per_flow_the_first_in_file_name_order(c, api):
    """coming-from-kong.md "Where a workflow runs": at most one workflow runs
    per flow, the first in file-name order. Kong also runs one instance of a
    plugin per request (the most specific entity's); files have no
    specificity here, so their order decides."""
    r = c.get(f"{api.url}/both/x")
    assert (r.status_code, r.json()) == (200, {"file": "10-first"})


def test_a_vault_backend_other_than_env_is_a_config_error(tmp_path):
    """coming-from-kong.md "Vault entities": only Kong's `env` backend exists;
    any other (aws, gcp, hcv ...) is refused when loading, naming it."""
    doc = {"vaults": [{"name": "aws", "prefix": "my-vault", "config": {}}],
           "nodes": [{"name": "A", "type": "static", "values": {"a": 1}}]}
    proc = validate(tmp_path, doc)
    assert proc.returncode != 0
    assert "vault backend 'aws' is not implemented" in proc.stdout + proc.stderr


# -- Execution ----------------------------------------------------------------------


def test_exit_does_not_stop_the_phase(c, api):
    """coming-from-kong.md "Execution": the first exit fixes the answer, and
    a node beside it in the same phase still runs (its call is sent); the
    upstream is never contacted."""
    api.clear()
    r = c.get(f"{api.url}/exit-beside/x")
    assert r.status_code == 201
    paths = [req.path for req in api.wait_for_requests(1)]
    assert paths == ["/beside"]


def test_kong_response_status_applies_after_an_exit(c, api):
    """coming-from-kong.md "Execution": `kong.response.status` set by a
    workflow wins over the exit's status (INDEX "Supported properties":
    `kong.response.set_status`)."""
    assert c.get(f"{api.url}/status-last/x").status_code == 418


def test_an_implicit_sink_takes_the_inputs_that_were_not_skipped(c, api):
    """coming-from-kong.md "Execution": HEADERS, skipped by the branch, does
    not stop BODY from reaching `response`."""
    r = c.get(f"{api.url}/partial/x")
    assert r.status_code == 200
    assert r.json() == {"kept": True}
    assert "x-skipped" not in r.headers


# -- The debug trace ----------------------------------------------------------------


def test_the_trace_shows_the_request_headers_value(c, api):
    """coming-from-kong.md "The debug trace": Kong's example (INDEX
    "Execution debug tracing") leaves out the `request` headers' value;
    here it is shown, as every other value."""
    report = c.get(f"{api.url}/trace-headers/x", headers={**TRACE, "X-Probe": "seen"}).json()
    complete = next(e for e in report["events"] if e["name"] == "request" and e["action"] == "complete")
    headers = next(v for v in complete["values"] if v.get("key") == "headers")
    assert headers["type"] == "map"
    assert headers["value"]["x-probe"] == "seen"


# -- Nodes ------------------------------------------------------------------------


def test_a_call_does_not_follow_a_redirect(c, api):
    """coming-from-kong.md "Nodes", call: a 3xx is a failure like any
    non-2xx (INDEX: the call node fails on a non-2XX response)."""
    api.clear()
    r = c.get(f"{api.url}/redirect/x")
    assert r.status_code == 500
    assert r.json()["node"]["name"] == "CALL"
    assert [req.path for req in api.wait_for_requests(1)] == ["/moved"]


def test_jq_whole_numbers_come_back_as_integers(c, api):
    """coming-from-kong.md "Nodes", jq: `4 / 2` is `2`, not `2.0`."""
    r = c.get(f"{api.url}/jq-number/x")
    assert r.text.replace(" ", "") in ('{"n":2,"f":2.5}', '{"f":2.5,"n":2}')


# -- Schema limits ----------------------------------------------------------------


STRICTER = [
    pytest.param({"name": "C", "type": "call"}, None, "field 'url': required attribute is missing", id="call.url:required"),
    pytest.param({"name": "K", "type": "cache", "ttl": -1}, {"cache": {"strategy": "memory"}},
                 "field 'ttl': value must be at least the minimum of 0", id="cache.ttl:minimum"),
    pytest.param({"name": "K", "type": "cache"},
                 {"cache": {"strategy": "redis", "redis": {"host": "127.0.0.1", "port": 6379, "database": -1}}},
                 "field 'resources.cache.redis.database': must be a non-negative integer", id="redis.database:minimum"),
]


@pytest.mark.parametrize(("node", "resources", "reason"), STRICTER)
def test_where_our_schema_is_stricter_than_kongs(tmp_path, node, resources, reason):
    """coming-from-kong.md "Schema limits": SCHEMA accepts these; here they
    are refused at load, naming the field."""
    doc: dict[str, Any] = {"nodes": [node]}
    if resources:
        doc["resources"] = resources
    if node["type"] == "cache":
        doc["nodes"] = [{"name": "KEY", "type": "static", "values": {"k": "a"}},
                        {**node, "inputs": {"key": "KEY.k"}}]
    proc = validate(tmp_path, doc)
    assert proc.returncode != 0, proc.stdout
    assert reason in proc.stdout + proc.stderr


def test_null_is_accepted_for_an_optional_attribute(tmp_path):
    """coming-from-kong.md "Schema limits": Kong's exported configs write
    unset attributes as `null`; SCHEMA's types refuse it, we accept it."""
    doc = {"nodes": [{"name": "C", "type": "call", "url": "http://127.0.0.1:9/", "timeout": None, "method": None}]}
    proc = validate(tmp_path, doc)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_node_name_outside_letters_digits_underscore_dash_is_refused(tmp_path):
    """coming-from-kong.md "Schema limits": SCHEMA's exported node name has no
    pattern (its text asks for snake_case or kebab-case); here a name with a
    space is refused at load."""
    proc = validate(tmp_path, {"nodes": [{"name": "my node", "type": "static", "values": {"a": 1}}]})
    assert proc.returncode != 0
    assert "invalid name 'my node'" in proc.stdout + proc.stderr
