"""Scrubbing the recorded request (scrub.py): which fields, and only those."""

from __future__ import annotations

import asyncio
import base64

import pytest

from mitmdatakit import config
from mitmdatakit.ports import Phase
from mitmdatakit.runtime import FlowRun, Services
from mitmdatakit.scrub import scrub_request
from tests.unit.addon_support import make_flow

SECRET = "s3cr3t-unit-Zq9"
BASIC = base64.b64encode(f"user:{SECRET}".encode()).decode()


@pytest.fixture(autouse=True)
def vault_env(monkeypatch):
    monkeypatch.setenv("DK_SCRUB_TEST", SECRET)


def _run(nodes: str, *, vault: bool = True, headers: dict[str, str] | None = None, path: str = "/p"):
    resources = 'resources: {vault: {token: "{vault://env/DK_SCRUB_TEST}"}}\n' if vault else ""
    wf = config.load_text(resources + "nodes:\n" + nodes, default_name="wf")
    run = FlowRun(wf, make_flow(path, headers=headers), Services())
    asyncio.run(run.run_phase(Phase.REQUEST))
    return run


KEYED = """\
  - {name: BEARER, type: jq, inputs: {token: vault.token}, jq: '"Bearer " + .token', output: service_request.headers.authorization}
  - {name: BASIC, type: jq, inputs: {token: vault.token}, jq: '"user:" + .token | @base64', output: service_request.query.sig}
  - {name: CLEAN, type: static, values: {v: clean-value}, outputs: {v: service_request.headers.x-clean}}
  - {name: PAGE, type: static, values: {v: "2"}, outputs: {v: service_request.query.page}}
"""


def test_keyed_writes_scrub_only_the_secret_fields():
    run = _run(KEYED, headers={"X-Client": "client-value"})
    req = run.flow.request
    assert req.headers["authorization"] == f"Bearer {SECRET}"  # what was sent
    assert scrub_request(run) == 2
    assert req.headers["authorization"] == "[REDACTED]"
    assert req.headers["x-clean"] == "clean-value"
    assert req.headers["x-client"] == "client-value"
    assert req.path == "/p?sig=[REDACTED]&page=2"


def test_a_whole_port_from_a_secret_scrubs_every_field_written_there():
    nodes = """\
  - name: HEADERS
    type: jq
    inputs: {token: vault.token}
    jq: '{authorization: ("Bearer " + .token), "x-note": "clean-but-mixed"}'
    output: service_request.headers
  - {name: BODY, type: jq, inputs: {token: vault.token}, jq: '{password: .token}', output: service_request.body}
"""
    run = _run(nodes, headers={"X-Client": "client-value"})
    req = run.flow.request
    assert scrub_request(run) == 3
    # conservative: a jq output mixing a secret is secret as a whole
    assert req.headers["authorization"] == req.headers["x-note"] == "[REDACTED]"
    assert req.headers["x-client"] == "client-value"
    assert req.get_content() == b"[REDACTED]"


def test_a_vault_value_is_scrubbed_wherever_the_request_holds_it():
    nodes = "  - {name: C, type: static, values: {v: x}}\n"
    run = _run(nodes, headers={"X-Echo": f"pre-{SECRET}"}, path=f"/p?k={SECRET}")
    assert scrub_request(run) == 2
    assert run.flow.request.headers["x-echo"] == "pre-[REDACTED]"
    assert run.flow.request.path == "/p?k=[REDACTED]"


def test_untainted_workflows_are_left_alone():
    nodes = "  - {name: H, type: static, values: {v: plain}, outputs: {v: service_request.headers.authorization}}\n"
    run = _run(nodes, vault=False)
    before = run.flow.request.get_state()
    assert not run.plan.secret_request_writes
    assert scrub_request(run) == 0
    assert run.flow.request.get_state() == before


def test_a_writer_that_never_ran_wrote_nothing():
    # e.g. a node failed before service_request ran: the client's own value stays
    wf = config.load_text('resources: {vault: {token: "{vault://env/DK_SCRUB_TEST}"}}\nnodes:\n' + KEYED, default_name="wf")
    run = FlowRun(wf, make_flow("/p", headers={"authorization": "client-own"}), Services())
    assert scrub_request(run) == 0
    assert run.flow.request.headers["authorization"] == "client-own"


def test_response_writers_fed_from_a_secret_are_known_at_load(caplog):
    nodes = "  - {name: EXIT, type: exit, inputs: {body: vault.token}}\n"
    with caplog.at_level("WARNING", logger="mitmdatakit"):
        wf = config.load_text('resources: {vault: {token: "{vault://env/DK_SCRUB_TEST}"}}\nnodes:\n' + nodes, default_name="wf")
    assert [wf.plan.nodes[w.node].name for w in wf.plan.secret_response_writes] == ["EXIT"]
    assert "sends values derived from a vault secret to the client ('EXIT')" in caplog.text
    assert SECRET not in caplog.text
