"""HTTP/1.1 load generator (its own process): N keep-alive connections,
each sending requests back to back, bounded by a request count and a time
limit; prints one JSON line with the results.

A raw asyncio client rather than aiohttp/httpx: it needs a fraction of their
CPU per request, which matters on a 2-core machine where the load generator
shares the cores with the proxy it measures.

Run: python -m bench.loadgen --port P --path /x --concurrency 32 \
         --requests 10000 --seconds 5 [--header 'Name: value'] [--host H]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

TIMEOUT = 30.0  # one request; a stuck request counts as an error


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    """Send one request, read the whole response; (status, keep-alive)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    line, _, rest = head.partition(b"\r\n")
    status = int(line.split(b" ", 2)[1])
    headers = rest.lower()
    keep = b"connection: close" not in headers
    i = headers.find(b"content-length:")
    if i >= 0:
        j = headers.find(b"\r\n", i)
        await reader.readexactly(int(headers[i + 15 : j]))
    elif b"transfer-encoding: chunked" in headers:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # close-delimited
        keep = False
    return status, keep


async def run(args: argparse.Namespace) -> dict:
    headers = [f"Host: {args.host}", "Accept: */*", "User-Agent: bench-loadgen", *list(args.header or [])]
    request = (f"GET {args.path} HTTP/1.1\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    budget = [args.requests]
    deadline = time.perf_counter() + args.seconds

    async def worker() -> None:
        conn = None
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(TIMEOUT):
                    if conn is None:
                        conn = await asyncio.open_connection("127.0.0.1", args.port)
                    status, keep = await _one(*conn, request)
            except Exception as e:  # noqa: BLE001 - counted, then reconnect
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if not keep:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "requests": len(latencies),
        "errors": errors,
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50": pct(50),
        "p99": pct(99),
        "mean": sum(latencies) / len(latencies) if latencies else None,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--host", default="bench.local")
    p.add_argument("--header", action="append")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
