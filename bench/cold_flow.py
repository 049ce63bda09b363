"""What a workflow's per-flow work costs hot and cold, in process.

    uv run python -m bench.cold_flow [--workflow overhead|static|headers|nomatch] [--flows 1500]

Inside mitmdump Datakit's code runs between long stretches of mitmproxy's
own work, which evict it from the CPU caches: measured through mitmdump the
same work costs about 2.5 to 3 times what a tight loop says (benchmark 1:
about 150 µs against 50 µs). This runs the engine's request and response
path on test flows twice: hot (flow after flow) and cold (a workload
touching 4 MiB and a few thousand Python objects before each flow, as
mitmproxy's work would). The cold figure tracks the mitmdump figure far
better than the hot one, without a proxy's noise: use it to compare
changes to the per-flow path (CPU time, mean per flow, median of 3 rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from mitmproxy import http
from mitmproxy.test import tflow, tutils

from . import workflows as W

WORKFLOWS = {
    "overhead": W.OVERHEAD,  # benchmark 1: static + jq + jq -> service_request.headers
    "static": "nodes:\n  - name: SETTINGS\n    type: static\n    values:\n      x-bench-tag: acme-gold\n",
    "headers": (
        "nodes:\n  - name: SETTINGS\n    type: static\n    values:\n      x-bench-tag: acme-gold\n      x-tenant: acme\n"
        "    output: service_request.headers\n"
    ),
    "nomatch": "match:\n  paths: [/never]\n" + W.OVERHEAD,  # selection only
}


class CacheEvictor:
    """Touches 4 MiB and 1,500 small Python objects: roughly what a flow's
    worth of mitmproxy's work leaves behind in the caches."""

    def __init__(self) -> None:
        self.block = bytearray(4 << 20)
        rng = random.Random(1)
        objects = [{f"k{i}": [i, str(i)]} for i in range(50_000)]
        self.sample = rng.sample(objects, 1500)

    def __call__(self) -> None:
        block = self.block
        for i in range(0, len(block), 64):
            block[i] = (block[i] + 1) & 255
        total = 0
        for o in self.sample:
            for v in o.values():
                total += v[0]


def per_flow_us(text: str, flows: int, evict: CacheEvictor | None) -> float:
    from mitmdatakit.config import load_text
    from mitmdatakit.engine import Engine
    from mitmdatakit.runtime import Services

    engine = Engine(Services())
    engine.workflows = [load_text(text)]
    headers = http.Headers([(b"host", b"bench.local"), (b"accept", b"*/*"), (b"user-agent", b"bench-loadgen")])
    upstream = tutils.tresp()

    async def one(f: http.HTTPFlow) -> None:
        await engine.request(f)
        if f.response is None:
            f.response = upstream
            await engine.response(f)

    async def run() -> float:
        todo = [tflow.tflow(req=tutils.treq(path=b"/", headers=headers.copy())) for _ in range(flows)]
        if evict is None:  # hot: the loop as a whole (no clock read per flow)
            t0 = time.process_time_ns()
            for f in todo:
                await one(f)
            return (time.process_time_ns() - t0) / flows / 1000
        spent = 0
        for f in todo:
            evict()
            t0 = time.process_time_ns()
            await one(f)
            spent += time.process_time_ns() - t0
        return spent / flows / 1000

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cold_flow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workflow", choices=sorted(WORKFLOWS), action="append",
                   help="which workflow (repeat; default: all)")
    p.add_argument("--flows", type=int, default=1500)
    args = p.parse_args(argv)
    evict = CacheEvictor()
    for name in args.workflow or list(WORKFLOWS):
        text = WORKFLOWS[name]
        hot = min(per_flow_us(text, args.flows, None) for _ in range(3))
        cold = statistics.median(per_flow_us(text, args.flows, evict) for _ in range(3))
        print(f"{name:9s} hot {hot:6.1f} µs   cold {cold:6.1f} µs per flow", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
