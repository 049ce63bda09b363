"""aiohttp vs httpx for the `call` node (`just bench --only http_client`).

Both clients are used the way the call node uses its client: one pooled
session shared by all requests, many requests in flight at once, the body
read whole and JSON-decoded. The upstream is the local bench server in its
own process; the client runs in this process, so its CPU time is this
process's CPU time during the run. Rounds alternate between the clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from .procs import start_upstream
from .proxy import Result, Settings, med


async def _aiohttp_run(url: str, n: int, concurrency: int, seconds: float) -> list[float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, ttl_dns_cache=300, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        async def one() -> float:
            t0 = time.perf_counter()
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=30), allow_redirects=False) as resp:
                json.loads(await resp.read())
                assert resp.status == 200
            return time.perf_counter() - t0

        return await _drive(one, n, concurrency, seconds)


async def _httpx_run(url: str, n: int, concurrency: int, seconds: float) -> list[float]:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=30)
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=30) as client:
        async def one() -> float:
            t0 = time.perf_counter()
            resp = await client.get(url)
            json.loads(resp.content)
            assert resp.status_code == 200
            return time.perf_counter() - t0

        return await _drive(one, n, concurrency, seconds)


async def _drive(one, n: int, concurrency: int, seconds: float) -> list[float]:
    """`n` requests, `concurrency` at a time, stopping early after `seconds`."""
    left = [n]
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            lat.append(await one())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat


CLIENTS = {"aiohttp": _aiohttp_run, "httpx": _httpx_run}


def measure(client: str, url: str, n: int, concurrency: int, seconds: float = 10.0) -> dict:
    cpu0, t0 = time.process_time(), time.perf_counter()
    lat = asyncio.run(CLIENTS[client](url, n, concurrency, seconds))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lat.sort()
    done = len(lat)
    return {"requests": done, "rps": done / wall, "cpu_per_request_us": cpu / done * 1e6,
            "p50": lat[done // 2], "p99": lat[int(done * 0.99)], "max": lat[-1]}


def http_clients(s: Settings, workdir: Path) -> Result:
    res = Result("http client (call node)")
    up, port = start_upstream(workdir)
    n = 1_000 if s.quick else 3_000
    seconds = 4.0 if s.quick else 8.0  # per run; httpx is slow with many in flight
    levels = (8, 64)
    rounds = min(s.rounds, 3 if s.quick else 5)
    with up:
        fast, slow = f"http://127.0.0.1:{port}/api/a", f"http://127.0.0.1:{port}/delay/100"
        for c in CLIENTS:
            measure(c, fast, 200, 16)  # warm-up (imports, first connections)
        runs: dict[str, dict[int, list[dict]]] = {c: {k: [] for k in levels} for c in CLIENTS}
        fan: dict[str, list[dict]] = {c: [] for c in CLIENTS}
        for r in range(rounds):
            for c in CLIENTS if r % 2 == 0 else list(reversed(CLIENTS)):
                for k in levels:
                    runs[c][k].append(measure(c, fast, n, k, seconds))
                fan[c].append(measure(c, slow, 8, 8))
    res.raw = {"throughput": runs, "fanout": fan}
    for c in CLIENTS:
        for k in levels:
            rr = runs[c][k]
            res.row(f"{c}: {k} in flight, fast local API",
                    f"{med([r['rps'] for r in rr]):.0f} req/s, {med([r['cpu_per_request_us'] for r in rr]):.0f} µs CPU/request")
        res.row(f"{c}: 8 concurrent calls to a 100 ms API", f"{med([r['max'] for r in fan[c]]) * 1000:.1f} ms for all 8")
    for k in levels:
        ratio = med([h["cpu_per_request_us"] / a["cpu_per_request_us"] for a, h in zip(runs["aiohttp"][k], runs["httpx"][k], strict=False)])
        res.row(f"httpx / aiohttp CPU per request, {k} in flight", f"{ratio:.2f}x",
                "aiohttp kept" if k == levels[-1] else "", None)
    return res
