"""Benchmark 1 with any arms side by side: other checkouts, reference scripts.

    uv run python -m bench.arms [--rounds 15] ARM [ARM ...]

ARM is one of
  empty                  an empty `-s` script: what mitmproxy's script
                         machinery costs before any addon code runs
  NAME=SCRIPT            SCRIPT (an addon/datakit.py, from any checkout)
                         serving benchmark 1's workflow
  NAME=SCRIPT:nomatch    the same workflow behind a `match` no flow meets

Plain mitmdump is always the reference. Every arm runs at once, the rounds
alternate between them as in benchmark 1, and each arm's CPU per request is
given against plain's (median of the per-round ratios, with their range).
To compare with older code, check it out next to this one:

    git worktree add --detach /tmp/before ae7c647
    uv run python -m bench.arms before=/tmp/before/addon/datakit.py now=addon/datakit.py

(mitmproxy puts a script's directory first on sys.path while loading it,
so each arm imports the `mitmdatakit` next to its own script.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from . import proxy as P
from . import workflows as W
from .procs import load, measured_load, start_upstream

WORKFLOWS = {"": W.OVERHEAD, "nomatch": "match:\n  paths: [/never]\n" + W.OVERHEAD}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.arms", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arms", nargs="+", metavar="ARM")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args(argv)
    s = P.Settings.make(False, rounds=args.rounds, seconds=args.seconds)
    workdir = Path(tempfile.mkdtemp(prefix="datakit-arms-"))
    empty = workdir / "empty.py"
    empty.write_text("# an empty mitmproxy script\n")
    up, uport = start_upstream(workdir)
    with ExitStack() as stack:
        stack.enter_context(up)
        procs = {"plain": stack.enter_context(P.mitm(workdir, uport, "plain", s)[0])}
        checked = []
        for arm in args.arms:
            if arm == "empty":
                procs[arm] = stack.enter_context(P.mitm(workdir, uport, arm, s, [empty])[0])
                continue
            name, _, spec = arm.partition("=")
            script, _, variant = spec.partition(":")
            if not script or variant not in WORKFLOWS:
                p.error(f"bad arm {arm!r}")
            config = W.write(workdir, name, WORKFLOWS[variant])
            procs[name] = stack.enter_context(P.mitm(workdir, uport, name, s, [Path(script)], {"datakit_config": str(config)})[0])
            if not variant:
                checked.append(name)
        for name in checked:  # the workflow really ran: the upstream echoes the header it set
            _, headers, _ = P.get(procs[name].port, "/check")
            assert headers.get("x-seen-tag") == "acme-gold", f"{name}: the workflow did not set the header: {headers}"
        for proc in procs.values():  # warm-up
            load(proc.port, "/", concurrency=s.concurrency, seconds=1.0)
        runs = P.alternate(list(procs), s.rounds, lambda arm: measured_load(
            procs[arm], procs[arm].port, "/", concurrency=s.concurrency, seconds=s.seconds, requests=1_000_000))
    plain = runs["plain"]
    print(f"plain: {statistics.median(r['cpu_per_request_us'] for r in plain):.0f} µs of CPU per request")
    for arm, rr in runs.items():
        if arm != "plain":
            cpu = P.paired_ratio(rr, plain, "cpu_per_request_us")
            print(f"{arm}: {cpu:.3f}x CPU per request{P.spread(rr, plain, 'cpu_per_request_us', '{:.2f}x')}, "
                  f"throughput {P.paired_ratio(rr, plain, 'rps'):.1%}, errors {P.errors_of(rr)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
