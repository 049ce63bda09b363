"""`just bench` (`uv run python -m bench`): Datakit's benchmarks, printed as
a table and written to bench/results/.

    just bench                     # everything (about 9 minutes)
    just bench --quick             # fewer, shorter rounds and fewer flows (about 4 minutes)
    just bench --only overhead     # one benchmark (repeat or comma-separate)
    just bench --profile           # run every mitmdump under cProfile (stats in bench/results/)

Benchmarks: overhead (1), handwritten (2), fanout (3), concurrency (4),
memory (5), nodes (6), http_client (aiohttp vs httpx for the call node).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

from . import guard_jq, guard_reload, guard_runs, nodes, proxy
from .http_client import http_clients
from .procs import REPO, workdir

RESULTS = REPO / "bench" / "results"

def _proxy_bench(fn):
    return lambda s, wd: fn(wd, s)


BENCHES = {
    **{name: _proxy_bench(fn) for name, fn in proxy.ALL.items()},
    "nodes": lambda s, wd: nodes.node_costs(s),
    "http_client": lambda s, wd: http_clients(s, wd),
    "guard_match": lambda s, wd: __import__("bench.guard_match", fromlist=["run"]).run(s, wd),
    "guard_body": lambda s, wd: __import__("bench.guard_body", fromlist=["run"]).run(s, wd),
    "guard_reload": lambda s, wd: guard_reload.run(s, wd),
    "guard_headers": lambda s, wd: __import__("bench.guard_headers", fromlist=["run"]).run(s, wd),
    "guard_runs": lambda s, wd: guard_runs.run(s, wd),
    "guard_jq": guard_jq.run,
    "guard_view": lambda s, wd: __import__("bench.guard_view", fromlist=["run"]).run(s, wd),
}
ALIASES = {"1": "overhead", "2": "handwritten", "3": "fanout", "4": "concurrency", "5": "memory", "6": "nodes"}


def table(rows: list[dict]) -> str:
    lines = ["| Benchmark | Measure | Result | Goal | Met |", "|---|---|---|---|---|"]
    last = None
    for r in rows:
        bench = r["bench"] if r["bench"] != last else ""
        last = r["bench"]
        met = {True: "yes", False: "**NO**", None: ""}[r["ok"]]
        lines.append(f"| {bench} | {r['measure']} | {r['value']} | {r['goal']} | {met} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    from mitmproxy.version import VERSION

    return f"{cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, mitmproxy {VERSION}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds and fewer flows (about 4 minutes)")
    p.add_argument("--only", action="append", metavar="NAME", help=f"run only these ({', '.join(BENCHES)}; or 1-6)")
    p.add_argument("--rounds", type=int, help="alternating rounds per comparison (default 15, quick 5)")
    p.add_argument("--seconds", type=float, help="seconds per measured round (default 2, quick 1.5)")
    p.add_argument("--profile", action="store_true", help="run every mitmdump under cProfile; stats in bench/results/")
    args = p.parse_args(argv)

    names = list(BENCHES)
    if args.only:
        names = []
        for item in args.only:
            for name in item.split(","):
                name = ALIASES.get(name.strip(), name.strip())
                if name not in BENCHES:
                    p.error(f"unknown benchmark {name!r} (known: {', '.join(BENCHES)})")
                names.append(name)

    settings = proxy.Settings.make(args.quick, args.rounds, args.seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.profile:
        settings.profile = RESULTS / f"profile-{stamp}.prof"
    wd = workdir()
    rows: list[dict] = []
    raw: dict = {}
    started = time.time()
    failed = []
    try:
        for name in names:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.time()
            try:
                result = BENCHES[name](settings, wd)
            except Exception as e:  # noqa: BLE001 - report it, go on with the others
                import traceback

                traceback.print_exc()
                failed.append(name)
                rows.append({"bench": name, "measure": "FAILED", "value": f"{type(e).__name__}: {e}"[:200], "goal": "", "ok": False})
                continue
            rows.extend(result.rows)
            raw[name] = result.raw
            print(f"[bench] {name} done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(wd, ignore_errors=True)

    text = table(rows)
    header = (f"Datakit benchmarks ({'quick' if args.quick else 'full'} run, {settings.rounds} rounds, "
              f"{time.time() - started:.0f} s) on {machine()}")
    if settings.profile is not None:
        header += "\n(every mitmdump ran under cProfile: times are inflated, compare arms only)"
    print()
    print(header)
    print()
    print(text)
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(
        {"header": header, "settings": vars(settings) | {"profile": str(settings.profile)}, "rows": rows, "raw": raw},
        indent=1, default=str))
    (RESULTS / f"bench-{stamp}.md").write_text(f"{header}\n\n{text}\n")
    (RESULTS / "latest.md").write_text(f"{header}\n\n{text}\n")
    print(f"\nwritten: bench/results/bench-{stamp}.md and .json", file=sys.stderr)
    if settings.profile is not None:
        _print_profiles(settings.profile)
    return 1 if failed else 0


def _print_profiles(prefix: Path) -> None:
    import pstats

    for f in sorted(prefix.parent.glob(f"{prefix.stem}-*.prof")):
        print(f"\n== profile {f.name} (add-on code, by cumulative time)", file=sys.stderr)
        stats = pstats.Stats(str(f), stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats("mitmdatakit|handwritten", 25)


if __name__ == "__main__":
    sys.exit(main())
