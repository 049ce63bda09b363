"""Scrubbing the recorded request (scrub.py): which fields, and only those."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from mitmdatakit import config
from mitmdatakit.engine import Engine
from mitmdatakit.ports import Phase
from mitmdatakit.restore import ResponseRestorer
from mitmdatakit.runtime import FlowRun, Services
from mitmdatakit.scrub import scrub_request
from tests.unit.addon_support import make_flow, upstream_response

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
    # such responses are scrubbed from the records now: nothing to warn about
    assert not caplog.records
    assert SECRET not in caplog.text


# -- the response: scrubbed for the recorders, real for the client ------------

EXIT_FROM_SECRET = """\
  - {name: BEARER, type: jq, inputs: {token: vault.token}, jq: '"Bearer " + .token'}
  - {name: BODY, type: jq, inputs: {token: vault.token}, jq: '{basic: ("user:" + .token | @base64)}'}
  - {name: CLEAN, type: static, values: {v: clean-value}}
  - name: EXIT
    type: exit
    status: 201
    inputs: {body: BODY, headers.authorization: BEARER, headers.x-clean: CLEAN.v}
"""


def _engine(nodes: str, *, vault: bool = True) -> tuple[Engine, ResponseRestorer]:
    resources = 'resources: {vault: {token: "{vault://env/DK_SCRUB_TEST}"}}\n' if vault else ""
    engine = Engine()
    engine.restorer = ResponseRestorer()
    engine.workflows = [config.load_text(resources + "nodes:\n" + nodes, default_name="wf")]
    return engine, engine.restorer


def _recorded(flow) -> tuple[str | None, str | None, bytes | None, str | None]:
    r = flow.response
    return r.headers.get("authorization"), r.headers.get("x-clean"), r.raw_content, r.headers.get("content-length")


async def _update_and_send(restorer: ResponseRestorer, flow, read=_recorded):
    """mitmproxy's hook task for the update after the response hook: the
    restorer runs last, the task may then wait (for the connection's event
    lock) and sends at its end; returns what was sent."""
    sent = []

    async def hook_task():
        restorer.update([flow])
        await asyncio.sleep(0)
        sent.append(read(flow))

    await asyncio.create_task(hook_task())
    await asyncio.sleep(0)  # the task's done callbacks
    return sent[0]


REAL_BODY = json.dumps({"basic": BASIC}, separators=(",", ":")).encode()
SCRUBBED = ("[REDACTED]", "clean-value", b"[REDACTED]", "10")
REAL = (f"Bearer {SECRET}", "clean-value", REAL_BODY, str(len(REAL_BODY)))


def test_an_exit_built_from_a_secret_is_recorded_scrubbed_and_sent_real():
    async def go():
        engine, restorer = _engine(EXIT_FROM_SECRET)
        flow = make_flow("/p")
        await engine.request(flow)
        assert flow.response.status_code == 201
        assert _recorded(flow) == SCRUBBED  # what responseheaders/response hooks and recorders see
        restorer.update([flow])  # the update after the request hook: too early
        assert _recorded(flow) == SCRUBBED
        restorer.response(flow)  # last in the response chain
        assert await _update_and_send(restorer, flow) == REAL  # last in the update chain
        assert _recorded(flow) == SCRUBBED  # sent: the in-memory flow is scrubbed again
        assert not restorer.held and not restorer.sending

    asyncio.run(go())


def test_a_response_node_header_on_the_upstream_response_is_restored():
    nodes = """\
  - {name: SIG, type: jq, inputs: {token: vault.token}, jq: '"sig-" + .token', output: response.headers.x-sig}
"""

    async def go():
        engine, restorer = _engine(nodes)
        flow = make_flow("/p")
        await engine.request(flow)
        flow.response = upstream_response(content=b"upstream-body")
        await engine.response(flow)
        assert flow.response.headers["x-sig"] == "[REDACTED]"
        assert flow.response.content == b"upstream-body"  # not written from a secret
        restorer.response(flow)
        sent = await _update_and_send(restorer, flow, read=lambda f: f.response.headers["x-sig"])
        assert sent == f"sig-{SECRET}"
        assert flow.response.headers["x-sig"] == "[REDACTED]"

    asyncio.run(go())


def test_a_field_changed_by_another_addon_is_kept_and_logged(caplog):
    async def go():
        engine, restorer = _engine(EXIT_FROM_SECRET)
        flow = make_flow("/p")
        await engine.request(flow)
        flow.response.content = b"[REDACTED] rewritten by another addon"
        restorer.response(flow)
        with caplog.at_level("ERROR", logger="mitmdatakit"):
            authorization, _, body, _ = await _update_and_send(restorer, flow)
        assert authorization == f"Bearer {SECRET}"
        assert body == b"[REDACTED] rewritten by another addon"
        assert "another addon changed the body of the response" in caplog.text
        assert flow.response.content == b"[REDACTED] rewritten by another addon"
        assert flow.response.headers["authorization"] == "[REDACTED]"

    asyncio.run(go())


def test_a_response_that_is_never_sent_stays_scrubbed():
    async def go():
        engine, restorer = _engine(EXIT_FROM_SECRET)
        errored, killed = make_flow("/p"), make_flow("/p")
        for flow in (errored, killed):
            await engine.request(flow)
        restorer.error(errored)  # e.g. the client went away
        killed.kill()  # killed by an addon in the response hook
        for flow in (errored, killed):
            restorer.response(flow)
            restorer.update([flow])
            assert _recorded(flow) == SCRUBBED
        assert not restorer.held and not restorer.sending

    asyncio.run(go())


def test_untainted_answers_and_failures_are_not_held():
    async def go():
        engine, restorer = _engine("  - {name: C, type: static, values: {v: plain}}\n"
                                   "  - {name: EXIT, type: exit, inputs: {body: C.v}}\n", vault=False)
        flow = make_flow("/p")
        await engine.request(flow)
        assert flow.response.content == b"plain"
        assert not restorer.held
        # a failing run after the secret was read: its 500 body (redacted) is left alone
        failing, _ = _engine("  - {name: BAD, type: jq, inputs: {token: vault.token}, jq: 'error(\"x\" + .token)'}\n"
                             "  - {name: EXIT, type: exit, inputs: {body: BAD}}\n")
        failing.restorer = restorer
        flow = make_flow("/p")
        await failing.request(flow)
        assert flow.response.status_code == 500
        assert b"An unexpected error occurred" in flow.response.content
        assert not restorer.held

    asyncio.run(go())


def test_the_restorer_is_last_in_mitmproxy_chain_and_shared():
    from mitmproxy.addons import save
    from mitmproxy.test import taddons

    from mitmdatakit.addon import Datakit

    first, second = Datakit(), Datakit()
    with taddons.context(save.Save()) as tctx:
        first._add_restorer()
        second._add_restorer()
        chain = tctx.master.addons.chain
        assert chain[-1] is first.restorer  # after Save (and whatever came before)
        assert second.engine.restorer is first.engine.restorer is first.restorer
        assert sum(isinstance(a, ResponseRestorer) for a in chain) == 1
        first._remove_restorer()
        assert not any(isinstance(a, ResponseRestorer) for a in tctx.master.addons.chain)
        # the sharer scrubs no more: nothing would restore its answers
        assert not second.engine.restorer.active


async def test_the_restorer_is_in_the_chain_only_while_a_workflow_needs_it(tmp_path):
    """Every addon in mitmproxy's chain costs every flow its hook calls: the
    restorer joins when a loaded workflow sends a secret to the client and
    leaves when none does."""
    import os

    from mitmproxy.addons import save
    from mitmproxy.test import taddons

    from mitmdatakit.addon import Datakit

    os.environ["DK_RESTORER_TEST_TOKEN"] = "s3cr3t-token-value"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "wf.yaml").write_text("nodes:\n  - {name: E, type: exit, status: 200}\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "wf.yaml").write_text(
        "resources:\n  vault:\n    token: '{vault://env/DK_RESTORER_TEST_TOKEN}'\n"
        "nodes:\n  - {name: E, type: exit, status: 200, inputs: {body: vault.token}}\n"
    )

    def restorers(tctx) -> int:
        return sum(isinstance(a, ResponseRestorer) for a in tctx.master.addons.chain)

    dk = Datakit(default_config=str(plain))
    with taddons.context(save.Save(), dk) as tctx:
        tctx.configure(dk, datakit_config=str(plain))
        dk.running()
        assert restorers(tctx) == 0 and dk.engine.restorer is None
        dk._config_path = str(secret)
        assert dk.reload()
        assert restorers(tctx) == 1 and dk.engine.restorer is not None and dk.engine.restorer.active
        assert tctx.master.addons.chain[-1] is dk.restorer  # last: after Save
        dk._config_path = str(plain)
        assert dk.reload()
        assert restorers(tctx) == 0 and dk.engine.restorer is None
        dk._config_path = str(secret)
        assert dk.reload()  # and back: a fresh restorer (mitmproxy called the old one's done)
        assert restorers(tctx) == 1 and dk.engine.restorer.active
        await dk.done()
