"""Benchmarks 1-5: a real mitmdump in reverse-proxy mode to a local upstream,
driven by the load generator in its own process.

Arms that are compared run side by side: their mitmdumps are all up at
once, measured rounds alternate between them (ABBA...), and figures are
medians of the rounds; ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import json
import statistics
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import workflows as W
from .procs import (
    ADDON,
    REPO,
    Proc,
    load,
    measured_load,
    start_mitmdump,
    start_upstream,
)

HANDWRITTEN = REPO / "bench" / "handwritten.py"
PROFILER = REPO / "bench" / "profile_addon.py"


@dataclass
class Settings:
    quick: bool = False
    rounds: int = 15
    seconds: float = 2.0  # one measured round of a throughput benchmark
    concurrency: int = 16
    profile: Path | None = None  # write cProfile stats of the Datakit mitmdumps here

    @classmethod
    def make(cls, quick: bool, rounds: int | None = None, seconds: float | None = None) -> Settings:
        # many short alternating rounds: the median of the per-round ratios
        # shrugs off bursts of other load better than a few long rounds
        s = cls(quick=quick, rounds=5 if quick else 15, seconds=1.5 if quick else 2.0)
        if rounds:
            s.rounds = rounds
        if seconds:
            s.seconds = seconds
        return s


@dataclass
class Result:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def row(self, measure: str, value: str, goal: str = "", ok: bool | None = None) -> None:
        self.rows.append({"bench": self.name, "measure": measure, "value": value, "goal": goal, "ok": ok})


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def alternate(arms: list[str], rounds: int, run: Callable[[str], dict]) -> dict[str, list[dict]]:
    """Run every arm once per round, the order reversed every other round."""
    out: dict[str, list[dict]] = {a: [] for a in arms}
    for r in range(rounds):
        for arm in arms if r % 2 == 0 else list(reversed(arms)):
            out[arm].append(run(arm))
    return out


def paired_ratio(a: list[dict], b: list[dict], key: str) -> float:
    """Median over rounds of a[key] / b[key]."""
    return med([x[key] / y[key] for x, y in zip(a, b, strict=False) if x[key] and y[key]])


def spread(a: list[dict], b: list[dict], key: str, fmt: str = "{:.0%}") -> str:
    """The range of the per-round ratios, to show how noisy a figure is."""
    ratios = [x[key] / y[key] for x, y in zip(a, b, strict=False) if x[key] and y[key]]
    if len(ratios) < 2:
        return ""
    return f" (rounds {fmt.format(min(ratios))}–{fmt.format(max(ratios))})"


def errors_of(runs: list[dict]) -> int:
    bad = 0
    for r in runs:
        bad += sum(r["errors"].values())
        bad += sum(v for k, v in r["statuses"].items() if k != "200")
    return bad


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def mitm(workdir: Path, up: int, name: str, s: Settings, scripts: list[Path] | None = None, options: dict | None = None) -> tuple[Proc, int]:
    """A mitmdump for one arm; with --profile every arm is profiled alike,
    so that the arms stay comparable."""
    scripts = list(scripts or [])
    options = dict(options or {})
    if s.profile is not None:
        scripts.append(PROFILER)
        options["bench_profile"] = str(s.profile.with_name(f"{s.profile.stem}-{name}.prof"))
    return start_mitmdump(workdir, up, name, scripts, options)


def datakit(workdir: Path, up: int, name: str, config: Path, s: Settings) -> tuple[Proc, int]:
    return mitm(workdir, up, name, s, [ADDON], {"datakit_config": str(config)})


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request, to check an arm before measuring it (the upstream echoes
    the X-Bench-Tag header a workflow set)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "bench.local", "X-Bench-Echo": "1", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


# --------------------------------------------------------------------------- #


def overhead(workdir: Path, s: Settings) -> Result:
    """1. plain mitmdump vs a 3-node pre-proxy workflow."""
    res = Result("1 overhead")
    up, uport = start_upstream(workdir)
    cfg = W.write(workdir, "overhead", W.OVERHEAD)
    with up, mitm(workdir, uport, "overhead-plain", s)[0] as plain_p, datakit(workdir, uport, "overhead", cfg, s)[0] as dk_p:
        procs = {"plain": plain_p, "datakit": dk_p}
        ports = {arm: p.port for arm, p in procs.items()}
        # the workflow really ran: the upstream echoes the header it set
        _, headers, _ = get(ports["datakit"], "/check")
        assert headers.get("x-seen-tag") == "acme-gold", f"workflow did not set the header: {headers}"
        for arm in procs:  # warm-up
            load(ports[arm], "/", concurrency=s.concurrency, seconds=1.0)
        runs = alternate(list(procs), s.rounds, lambda arm: measured_load(
            procs[arm], ports[arm], "/", concurrency=s.concurrency, seconds=s.seconds, requests=1_000_000))
    res.raw = runs
    ratio = paired_ratio(runs["datakit"], runs["plain"], "rps")
    for arm in ("plain", "datakit"):
        rr = runs[arm]
        res.row(f"{arm}: throughput", f"{med([r['rps'] for r in rr]):.0f} req/s")
        res.row(f"{arm}: p50 / p99 latency", f"{ms(med([r['p50'] for r in rr]))} / {ms(med([r['p99'] for r in rr]))}")
        res.row(f"{arm}: mitmdump CPU per request", f"{med([r['cpu_per_request_us'] for r in rr]):.0f} µs")
    res.row("datakit / plain throughput", f"{ratio:.1%}" + spread(runs["datakit"], runs["plain"], "rps"), ">= 90%", ratio >= 0.90)
    cpu = paired_ratio(runs["datakit"], runs["plain"], "cpu_per_request_us")
    res.row("datakit / plain CPU per request", f"{cpu:.2f}x" + spread(runs["datakit"], runs["plain"], "cpu_per_request_us", "{:.2f}x"))
    res.row("errors", str(errors_of(runs["plain"]) + errors_of(runs["datakit"])), "0", errors_of(runs["datakit"]) == 0)
    plain_cpu = med([r["cpu_per_request_us"] for r in runs["plain"]])
    work = in_process_cost(W.OVERHEAD)
    res.raw["in_process_us"] = work
    res.row("the workflow's own work per flow, in process (noise-free)",
            f"{work:.0f} µs = {work / plain_cpu:.1%} of plain's CPU per request")
    return res


def in_process_cost(text: str, n: int = 3000) -> float:
    """µs of CPU per flow for Engine.request + response on test flows, best
    of 3 (no proxy, no sockets: what the workflow itself costs)."""
    from .cold_flow import per_flow_us

    return min(per_flow_us(text, n, None) for _ in range(3))


def handwritten(workdir: Path, s: Settings) -> Result:
    """2. "combine two APIs": hand-written addon vs Datakit workflow."""
    res = Result("2 vs hand-written")
    up, uport = start_upstream(workdir)
    base = f"http://127.0.0.1:{uport}"
    cfg = W.write(workdir, "combine", W.COMBINE.format(base=base))
    with (
        up,
        mitm(workdir, uport, "handwritten", s, [HANDWRITTEN], {"combine_base": base})[0] as hand_p,
        datakit(workdir, uport, "combine", cfg, s)[0] as dk_p,
    ):
        procs = {"hand-written": hand_p, "datakit": dk_p}
        ports = {arm: p.port for arm, p in procs.items()}
        bodies = {arm: get(ports[arm], "/combine")[2] for arm in procs}
        assert json.loads(bodies["datakit"]) == json.loads(bodies["hand-written"]), bodies
        for arm in procs:
            load(ports[arm], "/combine", concurrency=s.concurrency, seconds=1.0)
        runs = alternate(list(procs), s.rounds, lambda arm: measured_load(
            procs[arm], ports[arm], "/combine", concurrency=s.concurrency, seconds=s.seconds, requests=1_000_000))
    res.raw = runs
    for arm in procs:
        rr = runs[arm]
        res.row(f"{arm}: mitmdump CPU per request", f"{med([r['cpu_per_request_us'] for r in rr]):.0f} µs")
        res.row(f"{arm}: throughput, p50", f"{med([r['rps'] for r in rr]):.0f} req/s, {ms(med([r['p50'] for r in rr]))}")
    ratio = paired_ratio(runs["datakit"], runs["hand-written"], "cpu_per_request_us")
    res.row("datakit / hand-written CPU per request",
            f"{ratio:.2f}x" + spread(runs["datakit"], runs["hand-written"], "cpu_per_request_us", "{:.2f}x"), "<= 1.25x", ratio <= 1.25)
    res.row("errors", str(errors_of(runs["datakit"]) + errors_of(runs["hand-written"])), "0", errors_of(runs["datakit"]) == 0)
    return res


def fanout(workdir: Path, s: Settings) -> Result:
    """3. 8 independent 100 ms calls vs one."""
    res = Result("3 fan-out")
    up, uport = start_upstream(workdir)
    base = f"http://127.0.0.1:{uport}"
    cfg = W.write_dir(workdir, "fanout", {"fanout1": W.fanout(1, base), "fanout8": W.fanout(8, base)})
    n = 10 if s.quick else 25
    with up, datakit(workdir, uport, "fanout", cfg, s)[0] as dk_p:
        port = dk_p.port
        status, _, body = get(port, "/fanout8")
        assert status == 200 and body.count(b"bench-upstream") == 8, body
        paths = {"direct call": ("/delay/100", uport), "1 call": ("/fanout1", port), "8 calls": ("/fanout8", port)}
        for path, p in paths.values():
            load(p, path, concurrency=1, requests=3, seconds=5)
        runs = alternate(list(paths), min(s.rounds, 7), lambda arm: load(  # latencies vary little
            paths[arm][1], paths[arm][0], concurrency=1, requests=n, seconds=30))
    res.raw = runs
    p50 = {arm: med([r["p50"] for r in rr]) for arm, rr in runs.items()}
    res.row("one call, direct to the API: p50", ms(p50["direct call"]))
    res.row("workflow with 1 call: p50 / p99", f"{ms(p50['1 call'])} / {ms(med([r['p99'] for r in runs['1 call']]))}")
    res.row("workflow with 8 calls: p50 / p99", f"{ms(p50['8 calls'])} / {ms(med([r['p99'] for r in runs['8 calls']]))}")
    r1 = paired_ratio(runs["8 calls"], runs["1 call"], "p50")
    r0 = paired_ratio(runs["8 calls"], runs["direct call"], "p50")
    res.row("8-call workflow / 1-call workflow latency", f"{r1:.2f}x")
    res.row("8-call workflow / one direct call latency",
            f"{r0:.2f}x" + spread(runs["8 calls"], runs["direct call"], "p50", "{:.2f}x"), "<= 1.3x", r0 <= 1.3)
    return res


def concurrency(workdir: Path, s: Settings) -> Result:
    """4. 200 concurrent clients, each flow making one 50 ms call.

    A third arm, a hand-written addon making the same call with aiohttp,
    shows what the call itself costs inside mitmproxy, whatever makes it.
    """
    res = Result("4 concurrency")
    up, uport = start_upstream(workdir)
    url = f"http://127.0.0.1:{uport}/delay/50"
    cfg = W.write(workdir, "call50", W.CALL_THEN_PROXY.format(base=f"http://127.0.0.1:{uport}"))
    clients = 200
    with (
        up,
        mitm(workdir, uport, "concurrency-plain", s)[0] as plain_p,
        datakit(workdir, uport, "call50", cfg, s)[0] as dk_p,
        mitm(workdir, uport, "handcall", s, [HANDWRITTEN], {"hand_call_url": url})[0] as hand_p,
    ):
        procs = {"plain": plain_p, "datakit": dk_p, "hand-written call": hand_p}
        ports = {arm: p.port for arm, p in procs.items()}
        for arm in ("datakit", "hand-written call"):
            _, headers, _ = get(ports[arm], "/check-call")
            assert headers.get("content-type") == "application/json", headers
        for arm in procs:
            load(ports[arm], "/", concurrency=clients, seconds=1.5)
        seconds = max(s.seconds, 2.0)
        runs = alternate(list(procs), s.rounds, lambda arm: measured_load(
            procs[arm], ports[arm], "/", concurrency=clients, seconds=seconds, requests=1_000_000))
    res.raw = runs
    for arm in procs:
        rr = runs[arm]
        res.row(f"{arm}: throughput", f"{med([r['rps'] for r in rr]):.0f} req/s")
        res.row(f"{arm}: p50 / p99 latency", f"{ms(med([r['p50'] for r in rr]))} / {ms(med([r['p99'] for r in rr]))}")
        res.row(f"{arm}: mitmdump CPU per request", f"{med([r['cpu_per_request_us'] for r in rr]):.0f} µs")
    ratio = paired_ratio(runs["datakit"], runs["plain"], "rps")
    res.row(f"datakit (+50 ms call) / plain throughput, {clients} clients",
            f"{ratio:.1%}" + spread(runs["datakit"], runs["plain"], "rps"), ">= 60%", ratio >= 0.60)
    hand = paired_ratio(runs["hand-written call"], runs["plain"], "rps")
    res.row("hand-written addon (same call) / plain throughput", f"{hand:.1%}")
    cpu = paired_ratio(runs["datakit"], runs["hand-written call"], "cpu_per_request_us")
    res.row("datakit / hand-written addon CPU per request", f"{cpu:.2f}x")
    bad = errors_of(runs["datakit"])
    res.row("datakit errors (failed or non-200)", str(bad), "0", bad == 0)
    return res


def memory(workdir: Path, s: Settings) -> Result:
    """5. RSS after 20,000 flows vs after 2,000; 100 workflows vs 1."""
    res = Result("5 memory")
    up, uport = start_upstream(workdir)
    base = f"http://127.0.0.1:{uport}"
    first, total = (1_000, 5_000) if s.quick else (2_000, 20_000)
    cfg = W.write(workdir, "memory", W.MEMORY.format(base=base))
    one = W.write_dir(workdir, "one-workflow", {"099": W.selected(99)})
    hundred = W.write_dir(workdir, "hundred-workflows", {f"{i:03d}": W.selected(i) for i in range(100)})
    with up:
        with datakit(workdir, uport, "memory", cfg, s)[0] as dk_p:
            port = dk_p.port
            r1 = load(port, "/", concurrency=s.concurrency, requests=first, seconds=600)
            rss1 = dk_p.rss()
            r2 = load(port, "/", concurrency=s.concurrency, requests=total - first, seconds=1200)
            rss2 = dk_p.rss()
        growth = rss2 / rss1 - 1
        res.raw["flows"] = {"first": r1, "rest": r2, "rss": [rss1, rss2]}
        res.row(f"RSS after {first:,} flows", f"{rss1 / 2**20:.1f} MiB")
        res.row(f"RSS after {total:,} flows", f"{rss2 / 2**20:.1f} MiB")
        bad = errors_of([r1, r2])
        res.row(f"RSS growth {first:,} -> {total:,} flows", f"{growth:+.1%}" + (f" ({bad} errors)" if bad else ""),
                "< 5%", growth < 0.05 and bad == 0)

        with (
            datakit(workdir, uport, "wf1", one, s)[0] as p1,
            datakit(workdir, uport, "wf100", hundred, s)[0] as p100,
        ):
            procs = {"1 workflow": p1, "100 workflows": p100}
            ports = {arm: p.port for arm, p in procs.items()}
            _, headers, _ = get(ports["100 workflows"], "/wf/099")
            assert headers.get("x-seen-tag") == "acme-gold", headers
            rounds = 2 if s.quick else 4
            runs = alternate(list(procs), rounds, lambda arm: measured_load(
                procs[arm], ports[arm], "/wf/099", concurrency=s.concurrency, requests=first // 2, seconds=600))
        res.raw["workflows"] = {"runs": runs}
        busy = {arm: runs[arm][-1]["rss"] for arm in procs}
        res.row(f"RSS with 1 / 100 workflows loaded, after {first // 2 * rounds:,} flows",
                f"{busy['1 workflow'] / 2**20:.1f} / {busy['100 workflows'] / 2**20:.1f} MiB "
                f"({(busy['100 workflows'] - busy['1 workflow']) / 99 / 1024:+.0f} KiB per workflow)")
        res.row("Python heap per loaded workflow (tracemalloc, in process)", f"{workflow_bytes() / 1024:.0f} KiB")
        ratio = paired_ratio(runs["100 workflows"], runs["1 workflow"], "rps")
        res.row("throughput, 100 workflows (the last one matches) / 1", f"{ratio:.1%}")
        cpu = paired_ratio(runs["100 workflows"], runs["1 workflow"], "cpu_per_request_us")
        res.row("CPU per request, 100 workflows / 1", f"{cpu:.2f}x")
    return res


def workflow_bytes() -> float:
    """Python memory held per loaded workflow (100 of the 3-node workflows)."""
    import gc
    import tracemalloc

    from mitmdatakit.config import load_text

    load_text(W.selected(0))  # imports, schema and other one-time caches
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [load_text(W.selected(i), default_name=f"wf{i}") for i in range(100)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == 100
    return (after - before) / 100


ALL = {
    "overhead": overhead,
    "handwritten": handwritten,
    "fanout": fanout,
    "concurrency": concurrency,
    "memory": memory,
}
