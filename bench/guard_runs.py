"""Cost of the run guards, in process: the disconnect bookkeeping each flow
pays (indexing its run by client connection), the watcher's tick, and
taint-aware tracing (plan-time taint, traced runs, the per-run redactor
built on failure), and the scrub of the recorded request and response
(secret workflows only; an untainted one returns at once), with the
restorer's swap of a scrubbed response and the hooks every flow pays."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from .nodes import per_call, twenty_node_workflow, us
from .proxy import Result, Settings

SECRET_WORKFLOW = """\
resources:
  vault:
    token: "{vault://env/DK_BENCH_SECRET}"
nodes:
  - {name: AUTH, type: jq, inputs: {token: vault.token}, jq: '{basic: ("user:" + .token | @base64)}'}
  - {name: CLEAN, type: static, values: {label: clean}}
  - {name: MIX, type: jq, inputs: {auth: AUTH, clean: CLEAN.label}, jq: '.clean'}
  - {name: EXIT, type: exit, inputs: {body: MIX}}
"""


WRITER_WORKFLOW = """\
resources:
  vault:
    token: "{vault://env/DK_BENCH_SECRET}"
nodes:
  - {name: BEARER, type: jq, inputs: {token: vault.token}, jq: '"Bearer " + .token', output: service_request.headers.authorization}
  - {name: BASIC, type: jq, inputs: {token: vault.token}, jq: '"user:" + .token | @base64', output: service_request.query.sig}
  - {name: BODY, type: jq, inputs: {token: vault.token}, jq: '{password: .token}', output: service_request.body}
"""


ANSWER_WORKFLOW = """\
resources:
  vault:
    token: "{vault://env/DK_BENCH_SECRET}"
nodes:
  - {name: BEARER, type: jq, inputs: {token: vault.token}, jq: '"Bearer " + .token'}
  - {name: BODY, type: jq, inputs: {token: vault.token}, jq: '{basic: ("user:" + .token | @base64)}'}
  - {name: EXIT, type: exit, inputs: {body: BODY, headers.authorization: BEARER}}
"""


def run(s: Settings, wd: Path) -> Result:
    from mitmproxy.test import tflow

    from mitmdatakit import config
    from mitmdatakit.disconnects import abort_abandoned
    from mitmdatakit.engine import Engine
    from mitmdatakit.ports import Phase
    from mitmdatakit.restore import ResponseRestorer
    from mitmdatakit.runtime import FlowRun, Services
    from mitmdatakit.scrub import scrub_request, scrub_response
    from mitmdatakit.taint import secret_ports

    logging.getLogger("mitmdatakit").setLevel(logging.CRITICAL)
    os.environ["DK_BENCH_SECRET"] = "s3cr3t-bench"
    res = Result("guard: runs")
    number = 2_000 if s.quick else 20_000

    wf = config.load_text(SECRET_WORKFLOW, default_name="derive")
    engine = Engine(Services())
    engine.workflows = [wf]
    flow = tflow.tflow()
    run_ = FlowRun(wf, flow, engine.services)

    def track_untrack():
        engine._track(run_)
        engine._untrack(flow)

    res.row("disconnect bookkeeping per flow (index + unindex by client)", us(per_call(track_untrack, number)))

    waiting = 300
    for _ in range(waiting):
        f = tflow.tflow()
        engine._track(FlowRun(wf, f, engine.services))
    res.row(f"watcher tick over {waiting} tracked runs (none gone)", us(per_call(lambda: abort_abandoned(engine), number // 20)))
    engine.runs.clear()
    engine.runs_by_client.clear()

    twenty = config.load_text(twenty_node_workflow(), default_name="twenty")
    plan = twenty.plan
    res.row("plan-time taint, 20-node workflow (once per load)",
            us(per_call(lambda: secret_ports(plan.nodes, plan.inputs, plan.order), number // 10)))

    async def one(tracing: bool) -> None:
        r = FlowRun(wf, tflow.tflow(), engine.services, tracing=tracing)
        await r.run_phase(Phase.REQUEST)

    def timed(tracing: bool) -> float:
        async def loop() -> float:
            import time
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(number // 10):
                    await one(tracing)
                best = min(best, (time.perf_counter() - t0) / (number // 10))
            return best
        return asyncio.run(loop())

    plain, traced = timed(False), timed(True)
    res.row("secret workflow run, untraced / traced (taint-redacted)", f"{us(plain)} / {us(traced)}")

    done = FlowRun(wf, tflow.tflow(), engine.services)
    asyncio.run(done.run_phase(Phase.REQUEST))
    res.row("per-run redactor (built on failure only)", us(per_call(done.redactor, number // 10)))

    # the recorded request's scrub, paid at the end of every run of the workflow
    writer = config.load_text(WRITER_WORKFLOW, default_name="writer")
    written = FlowRun(writer, tflow.tflow(), engine.services)
    asyncio.run(written.run_phase(Phase.REQUEST))
    res.row("record scrub per flow, secret written to header+query+body",
            us(per_call(lambda: scrub_request(written), number // 10)))
    clean = config.load_text(twenty_node_workflow(), default_name="clean")
    untainted = FlowRun(clean, tflow.tflow(), engine.services)
    res.row("record scrub per flow, untainted workflow", us(per_call(lambda: scrub_request(untainted), number)))

    # the answer to the client: scrubbed for the recorders, restored for the
    # wire, scrubbed again once sent (three swaps per flow)
    answer = config.load_text(ANSWER_WORKFLOW, default_name="answer")
    answered = FlowRun(answer, tflow.tflow(), engine.services)
    asyncio.run(answered.run_phase(Phase.REQUEST))
    answer_engine = Engine(Services())
    answered.flow.response = answer_engine._exit_response(answered)
    real = answered.flow.response.copy()

    def scrub_restore_rescrub():
        answered.flow.response = real.copy()
        scrubbed = scrub_response(answered)
        scrubbed.restore(answered.flow.response)
        scrubbed.rescrub(answered.flow.response)

    copy_only = per_call(lambda: real.copy(), number // 10)
    res.row("response scrub + restore + rescrub per flow, secret in a header and the body",
            us(per_call(scrub_restore_rescrub, number // 10) - copy_only))
    untainted.flow.response = real.copy()
    res.row("response scrub per flow, untainted workflow", us(per_call(lambda: scrub_response(untainted), number)))
    restorer = ResponseRestorer()
    other = tflow.tflow(resp=True)
    flows = [other]

    def hooks_of_a_flow_not_held():
        restorer.response(other)
        restorer.update(flows)

    res.row("restorer hooks per flow it does not hold (every flow: response + update)",
            us(per_call(hooks_of_a_flow_not_held, number)))
    return res
