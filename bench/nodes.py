"""Benchmark 6, in process: microseconds per node execution and of the
scheduler itself, and proof that compiling and planning happen once per
workflow, never per flow.

Flows are mitmproxy's test flows (`mitmproxy.test.tflow`); the runs are
real `FlowRun`s and a real `Engine`, without a proxy around them.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

from .proxy import Result, Settings

TWENTY = """\
nodes:
  - {name: CONF, type: static, values: {a: 1, b: "two", list: [1, 2, 3]}}
  - {name: USER, type: property, property: kong.ctx.shared.user}
%(layer1)s%(layer2)s%(layer3)s  - name: L4
    type: jq
    inputs: {x: L3_0, y: L3_1}
    jq: '{x: .x, y: .y}'
  - {name: SAVE, type: property, property: kong.ctx.shared.result, input: L4}
  - {name: HEADERS, type: static, values: {x-bench: "yes"}}
  - name: EXIT
    type: exit
    status: 200
    inputs: {body: L4, headers: HEADERS}
"""


def twenty_node_workflow() -> str:
    l1 = "".join(
        f"  - name: L1_{i}\n    type: jq\n    inputs: {{conf: CONF, user: USER}}\n    jq: '.conf.a + {i}'\n" for i in range(8)
    )
    l2 = "".join(
        f"  - name: L2_{i}\n    type: jq\n    inputs: {{x: L1_{2 * i}, y: L1_{2 * i + 1}}}\n    jq: '[.x, .y]'\n" for i in range(4)
    )
    l3 = "".join(
        f"  - name: L3_{i}\n    type: jq\n    inputs: {{x: L2_{2 * i}, y: L2_{2 * i + 1}}}\n    jq: '.x + .y'\n" for i in range(2)
    )
    return TWENTY % {"layer1": l1, "layer2": l2, "layer3": l3}


def per_call(fn: Callable[[], Any], number: int, repeat: int = 5) -> float:
    """Seconds per call of `fn`: the best of `repeat` timings (as timeit
    advises: slower runs measure the machine's other load, not the code)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


async def per_call_async(fn: Callable[[], Any], number: int, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            await fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def node_costs(s: Settings) -> Result:
    import logging

    from mitmproxy.test import tflow, tutils

    from mitmdatakit import config, graph
    from mitmdatakit.engine import Engine
    from mitmdatakit.nodes import base
    from mitmdatakit.nodes import jq as jq_node
    from mitmdatakit.ports import Phase
    from mitmdatakit.runtime import FlowRun, Services

    logging.getLogger("mitmdatakit").setLevel(logging.CRITICAL)
    res = Result("6 per-node cost")
    number = 2_000 if s.quick else 10_000

    # -- count compiles, plans and node constructions ------------------------
    counts = {"build_plan": 0, "jq.compile": 0, "Node()": 0}

    def counting(key: str, fn: Callable) -> Callable:
        def wrapper(*a, **kw):
            counts[key] += 1
            return fn(*a, **kw)
        return wrapper

    orig = (config.build_plan, jq_node.jq.compile, base.Node.__init__)
    config.build_plan = counting("build_plan", graph.build_plan)
    jq_node.jq.compile = counting("jq.compile", orig[1])
    base.Node.__init__ = counting("Node()", orig[2])
    try:
        wf = config.load_text(twenty_node_workflow(), default_name="twenty")
        loaded = dict(counts)
        for key in counts:
            counts[key] = 0

        def flow():
            return tflow.tflow(req=tutils.treq(path=b"/twenty", headers=((b"user-agent", b"bench"),)))

        engine = Engine(Services())
        engine.workflows = [wf]

        async def engine_flows(n: int) -> float:
            flows = [flow() for _ in range(n)]
            t0 = time.perf_counter()
            for f in flows:
                await engine.request(f)
            return (time.perf_counter() - t0) / n

        engine_20 = min(asyncio.run(engine_flows(number // 4)) for _ in range(3))
        per_flow = dict(counts)
        flows_run = 3 * (number // 4)
    finally:
        config.build_plan, jq_node.jq.compile, base.Node.__init__ = orig
    res.raw["counts"] = {"load": loaded, "flows": per_flow, "flows_run": flows_run}
    once = loaded["build_plan"] == 1 and loaded["jq.compile"] == 15 and all(v == 0 for v in per_flow.values())
    res.row("compile / plan while loading the 20-node workflow",
            f"plan {loaded['build_plan']}, jq compile {loaded['jq.compile']}, nodes built {loaded['Node()']}")
    res.row(f"compile / plan / node builds during {flows_run:,} flows",
            f"{per_flow['build_plan']} / {per_flow['jq.compile']} / {per_flow['Node()']}", "0 / 0 / 0", once)

    # -- single nodes: the node's own work (node.run), inputs prepared ------
    plan = wf.plan
    run = FlowRun(wf, flow(), Services())
    asyncio.run(run.run_phase(Phase.REQUEST))  # fills in every value
    inputs = {i: run._gather(i) for i in range(len(plan.nodes)) if plan.nodes[i].declared}

    def node(name: str):
        i = plan.by_name[name]
        return plan.nodes[i], inputs[i]

    jq_n, jq_in = node("L4")
    st_n, st_in = node("CONF")
    get_n, get_in = node("USER")
    set_n, set_in = node("SAVE")
    ex_n, ex_in = node("EXIT")

    def exit_once():
        run.client_response.exit = None
        ex_n.run(ex_in, run)

    # bounded programs run in process (a plain result); others in a worker
    # process (jq_pool), awaited on one loop
    loop = asyncio.new_event_loop()
    l1_n, l1_in = node("L1_0")
    in_worker = copy.copy(jq_n)
    in_worker.in_process = False
    costs = {
        "jq (bounded program, in process)": per_call(lambda: jq_n.run(jq_in, run), number),
        "jq (one-input filter, `.conf.a + 0`, in process)": per_call(lambda: l1_n.run(l1_in, run), number),
        "jq (in a worker process, round trip)": loop.run_until_complete(per_call_async(lambda: in_worker.run(jq_in, run), number)),
        "static": per_call(lambda: st_n.run(st_in, run), number * 5),
        "property get (kong.ctx.shared)": per_call(lambda: get_n.run(get_in, run), number * 5),
        "property set (kong.ctx.shared)": per_call(lambda: set_n.run(set_in, run), number * 5),
        "exit": per_call(exit_once, number * 5),
    }
    # the exit node only records the answer; the engine builds the mitmproxy
    # Response from it when the phase ends
    exit_once()
    costs["exit: the answer built from it (ClientResponse.exit_message)"] = per_call(run.client_response.exit_message, number)
    for name, cost in costs.items():
        res.row(f"{name}: per execution", us(cost))

    # -- the scheduler on the 20-node graph ---------------------------------
    outputs = {i: run.values[i] for i in range(len(plan.nodes)) if run.values[i] is not None}
    own = 0.0  # summed node.run time of one real flow
    for i in outputs:
        n, inp = plan.nodes[i], run._gather(i)
        if n.declared:
            own += per_call(lambda n=n, inp=inp: (setattr(run.client_response, "exit", None), _drive(loop, n.run(inp, run))), 500, 3)
    loop.close()

    async def full_flow():
        r = FlowRun(wf, flow_obj, engine.services)
        await r.run_phase(Phase.REQUEST)

    flow_obj = flow()
    full = asyncio.run(_time_async(full_flow, number // 4))
    # the same with every node's work replaced by handing back its output
    stubs = {}
    for i, out in outputs.items():
        stubs[i] = plan.nodes[i].run
        plan.nodes[i].run = lambda inputs, ctx, out=out: out
    try:
        sched = asyncio.run(_time_async(full_flow, number // 2))
    finally:
        for i, fn in stubs.items():
            plan.nodes[i].run = fn
    declared = sum(1 for n in plan.nodes if n.declared)
    res.raw["twenty"] = {"full": full, "scheduler": sched, "node_work": own, "engine": engine_20}
    res.row("20-node graph: whole flow through Engine.request", us(engine_20))
    res.row("20-node graph: FlowRun + run_phase (real nodes)", f"{us(full)} (node work {us(own)})")
    res.row("scheduler alone (node work stubbed): per flow / per node",
            f"{us(sched)} / {us(sched / declared)}")
    return res


def _drive(loop: asyncio.AbstractEventLoop, result: Any) -> Any:
    """A node's result; a coroutine node (jq) is run to completion."""
    return loop.run_until_complete(result) if asyncio.iscoroutine(result) else result


async def _time_async(fn: Callable, number: int) -> float:
    return await per_call_async(fn, number, 3)


ALL = {"nodes": node_costs}
