"""The cost of the jq time budget: one jq execution in process (what the
node did before) vs in a worker process of `jq_pool` (what it does now),
in wall time and CPU (the proxy's and the worker's), and what a killed
runaway costs (kill, respawn, first answer of the new worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from .procs import cpu_seconds
from .proxy import Result, Settings

PROGRAM = '{"x-bench-tag": .tag, "x-tenant": .settings.tenant}'  # the overhead workflow's second jq node
DATA = {"tag": "acme-gold", "settings": {"tenant": "acme", "tier": "gold"}}


def run(settings: Settings, wd) -> Result:
    import jq

    from mitmdatakit.errors import JqTimeout
    from mitmdatakit.jq_pool import JqPool

    res = Result("guard jq")
    number = 2000 if settings.quick else 10000
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    program = jq.compile(PROGRAM)

    def in_process() -> None:
        program.input_text(encode(DATA)).all()

    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(number):
        in_process()
    inproc_wall, inproc_cpu = (time.perf_counter() - w0) / number, (time.process_time() - c0) / number

    async def worker_figures() -> dict:
        pool = JqPool(size=1)
        data = encode(DATA).encode()
        try:
            json.loads(await pool.run(PROGRAM, data, 1000))  # start the worker, compile once
            worker = pool.workers[0].proc.pid
            wk0 = cpu_seconds(worker)
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(number):
                json.loads(await pool.run(PROGRAM, data, 1000))
            wall, cpu = (time.perf_counter() - w0) / number, (time.process_time() - c0) / number
            worker_cpu = (cpu_seconds(worker) - wk0) / number
            # a runaway: killed at a 100 ms budget; then the next answer
            # comes from a fresh worker (spawned off the loop)
            t0 = time.perf_counter()
            with contextlib.suppress(JqTimeout):
                await pool.run("def f: f; f", b"null", 100)
            killed = time.perf_counter() - t0
            t0 = time.perf_counter()
            await pool.run(PROGRAM, data, 1000)
            respawn = time.perf_counter() - t0
            return {"wall": wall, "cpu": cpu, "worker_cpu": worker_cpu, "killed": killed, "respawn": respawn}
        finally:
            pool.close()

    w = asyncio.run(worker_figures())
    res.raw = {"in_process": {"wall": inproc_wall, "cpu": inproc_cpu}, "worker": w, "executions": number}

    def us(s: float) -> str:
        return f"{s * 1e6:.1f} µs"

    res.row("jq in process (before): wall / CPU per execution", f"{us(inproc_wall)} / {us(inproc_cpu)}")
    res.row("jq in a worker: wall per execution (round trip)", us(w["wall"]))
    res.row("jq in a worker: CPU per execution, proxy + worker",
            f"{us(w['cpu'])} + {us(w['worker_cpu'])} = {us(w['cpu'] + w['worker_cpu'])}")
    res.row("extra CPU per jq node (worker design - in process)", us(w["cpu"] + w["worker_cpu"] - inproc_cpu))
    res.row("runaway at a 100 ms budget: answered after", f"{w['killed'] * 1000:.0f} ms")
    res.row("next program after a kill (fresh worker starts)", f"{w['respawn'] * 1000:.0f} ms")
    return res
