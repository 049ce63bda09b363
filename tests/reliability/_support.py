"""Shared helpers of the reliability tests: workflow files, a light async
load generator (aiohttp through the proxy), and the in-proxy probe."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

from tests.harness import DEFAULT_SCRIPT, Mitmdump

HERE = Path(__file__).resolve().parent
PROBE_SCRIPT = HERE / "probe_addon.py"
PROBE_URL = "http://datakit-probe.test/"
SCRIPTS = [PROBE_SCRIPT, DEFAULT_SCRIPT]  # the probe answers its host before Datakit runs

GENERIC_MESSAGE = "An unexpected error occurred"


def write_workflows(directory: Path, docs: Mapping[str, Mapping[str, Any]]) -> Path:
    """One YAML file per workflow, named so that name order is dict order."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, (name, doc) in enumerate(docs.items()):
        (directory / f"{i:02d}-{name}.yaml").write_text(yaml.safe_dump(dict(doc), sort_keys=False))
    return directory


# -- the probe ---------------------------------------------------------------


def probe(mitm: Mitmdump) -> dict[str, Any]:
    """The proxy's task/fd/run counts (a fresh connection, closed after)."""
    with httpx.Client(proxy=mitm.proxy_url, trust_env=False, timeout=10) as c:
        r = c.get(PROBE_URL)
    r.raise_for_status()
    return r.json()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def socket_count(pid: int) -> int:
    """Open sockets of a process (descriptors that link to `socket:[...]`)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass  # closed meanwhile
    return count


def settle(mitm: Mitmdump, *, tasks_at_most: int, timeout: float = 8.0) -> dict[str, Any]:
    """Poll the probe until the proxy is idle again: no Datakit run tracked
    and at most `tasks_at_most` tasks (connections closing take a moment).
    Returns the last report either way; the caller asserts."""
    deadline = time.monotonic() + timeout
    while True:
        report = probe(mitm)
        if (report["runs"] == 0 and report["tasks"] <= tasks_at_most) or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


# -- load generation ---------------------------------------------------------


@dataclass
class Spec:
    """One request to send: `kind` groups results for the reconciliation."""

    kind: str
    url: str
    method: str = "GET"
    headers: Mapping[str, str] | None = None
    body: bytes | None = None


@dataclass
class Result:
    kind: str
    status: int | None = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    elapsed: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


async def send_all(proxy_url: str, specs: Sequence[Spec], concurrency: int, timeout: float = 20.0) -> list[Result]:
    """Send every spec through the proxy with `concurrency` workers (each
    keeps its own keep-alive connection). Every spec yields a Result: a
    response, or the error that kept it from getting one (a lost/hung flow).
    """
    results: list[Result | None] = [None] * len(specs)
    next_index = iter(range(len(specs)))
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, auto_decompress=False) as session:

        async def worker() -> None:
            for i in next_index:
                spec = specs[i]
                started = time.perf_counter()
                try:
                    async with session.request(
                        spec.method, spec.url, headers=spec.headers, data=spec.body, proxy=proxy_url
                    ) as resp:
                        body = await resp.read()
                        results[i] = Result(spec.kind, resp.status, body, {k.lower(): v for k, v in resp.headers.items()},
                                            None, time.perf_counter() - started)
                except Exception as e:  # noqa: BLE001 - a lost flow is a result too
                    results[i] = Result(spec.kind, error=f"{type(e).__name__}: {e}", elapsed=time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    await asyncio.sleep(0)  # let aiohttp close its transports
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def tally(results: Sequence[Result]) -> Counter[tuple[str, int | str]]:
    """(kind, status or 'error') -> count."""
    return Counter((r.kind, r.status if r.status is not None else "error") for r in results)


def status_class(status: int | None) -> str:
    return "lost" if status is None else f"{status // 100}xx"


def rss_mb(pid: int) -> float:
    """A process's resident memory, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")
