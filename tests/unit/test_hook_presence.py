"""Which mitmproxy hooks the addon offers, flow by flow (addon.py
`_choose_hooks`, the `response` property; docs/benchmarks.md): mitmproxy
looks a hook up on every event and skips a missing or None one, so a hook
that has nothing to do is not there."""

from __future__ import annotations

import pytest
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons

from mitmdatakit.addon import Datakit
from tests.unit.addon_support import DK, make_flow, upstream_response


@pytest.fixture
async def proxied(tmp_path):
    """The addon beside mitmproxy's proxy server addon (its mode and stream options)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    addon = Datakit(default_config=str(empty))
    with taddons.context(Proxyserver(), addon) as tctx:
        yield DK(tctx, addon, tmp_path)
        await addon.done()

REQUEST_ONLY = """\
nodes:
  - name: TAG
    type: static
    values: {x-tag: t1}
    output: service_request.headers
"""
BOTH_PHASES = """\
nodes:
  - name: STAMP
    type: jq
    input: service_response.status
    jq: '{"x-status": (. | tostring)}'
    output: response.headers
"""


async def test_a_request_only_run_ends_with_its_request_phase(dk):
    dk.load(REQUEST_ONLY)
    flow = make_flow()
    await dk.addon.request(flow)
    assert flow.request.headers["x-tag"] == "t1"
    assert flow.metadata["datakit"]["status"] == "PLAN_COMPLETE"  # summary kept at once
    assert dk.addon.engine.runs == {}  # never tracked
    assert dk.addon.response is None  # no response hook for mitmproxy to call
    # replay takes the upstream's answer from the record
    assert flow.metadata["datakit_originals"]["service_response"] == "as recorded"


async def test_a_request_only_run_that_waited_for_a_call_is_untracked(dk, srv):
    """A request phase with a node task (a call) is tracked while it waits
    (a client that goes away aborts it), and untracked when it ends."""
    dk.load(f"""\
nodes:
  - name: CALL
    type: call
    url: {srv.url}/fast
  - name: TAG
    type: jq
    input: CALL.body
    jq: '{{"x-n": (.x | tostring)}}'
    output: service_request.headers
""")
    flow = make_flow()
    await dk.addon.request(flow)
    assert flow.request.headers["x-n"] == "1"
    assert flow.metadata["datakit"]["status"] == "PLAN_COMPLETE"
    assert dk.addon.engine.runs == {} and dk.addon.engine.runs_by_client == {}
    assert dk.addon.response is None


async def test_the_response_hook_is_there_while_a_run_awaits_the_response(dk):
    dk.load(BOTH_PHASES)
    flow = make_flow()
    await dk.addon.request(flow)
    assert flow.id in dk.addon.engine.runs
    hook = dk.addon.response
    assert hook is not None
    flow.response = upstream_response(status=201)
    await hook(flow)
    assert flow.response.headers["x-status"] == "201"
    assert flow.metadata["datakit"]["status"] == "PLAN_COMPLETE"
    assert dk.addon.response is None  # the last awaiting run is done


async def test_reverse_mode_rewrites_the_host_in_the_request_hook(proxied):
    """Without streaming or Kong, no requestheaders hook: the Host rewrite
    that keeps match.hosts on the client's Host runs in `request`."""
    proxied.tctx.configure(proxied.addon, mode=["reverse:http://127.0.0.1:8080"])
    assert not hasattr(proxied.addon, "requestheaders")
    assert not hasattr(proxied.addon, "addons")
    proxied.load("match:\n  hosts: [api.test]\n" + REQUEST_ONLY)
    flow = make_flow(headers={"Host": "API.test."})
    flow.client_conn.proxy_mode = ProxyMode.parse("reverse:http://127.0.0.1:8080")
    flow.server_conn.address = ("127.0.0.1", 8080)
    await proxied.addon.request(flow)
    assert flow.request.headers["x-tag"] == "t1"  # selected on the client's Host
    assert flow.request.host_header == "127.0.0.1:8080"  # and rewritten as mitmproxy would


async def test_streaming_puts_the_host_rewrite_back_at_requestheaders(proxied):
    proxied.tctx.configure(proxied.addon, mode=["reverse:http://127.0.0.1:8080"], stream_large_bodies="1m")
    assert callable(getattr(proxied.addon, "requestheaders", None))
    assert callable(getattr(proxied.addon, "responseheaders", None))
    proxied.tctx.configure(proxied.addon, stream_large_bodies=None)
    assert not hasattr(proxied.addon, "requestheaders")
