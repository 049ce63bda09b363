"""Compare two mitmdump profiles from `--profile`, per flow.

    uv run python -m bench.profile_diff A.prof B.prof [--top 30] [--sort tottime|cumtime|calls]

The arms of a run serve different numbers of flows, so every figure is per
flow (the calls of `mitmproxy.flow.Flow.__init__`). Printed: where the time
goes by category (Datakit, mitmproxy's hook dispatch, the rest of
mitmproxy, asyncio, other Python; a built-in function counts for the
category of its most expensive caller), then the functions whose figure
grew most from A to B. Same call counts with more time per call point at
cache and allocation effects rather than at extra work.
"""

from __future__ import annotations

import argparse
import pstats
from collections import Counter

# pstats entries: (primitive calls, calls, tottime, cumtime, callers)
Key = tuple[str, int, str]

SORTS = {"calls": 1, "tottime": 2, "cumtime": 3}


def load(path: str) -> tuple[dict[Key, tuple], int]:
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    flows = max((v[1] for k, v in stats.items() if k[0].endswith("mitmproxy/flow.py") and k[2] == "__init__"), default=0)
    if not flows:
        raise SystemExit(f"{path}: no flows in this profile")
    return stats, flows


def category(key: Key, callers: dict[Key, tuple] | None) -> str:
    file = key[0]
    if "mitmdatakit" in file:
        return "datakit"
    if "mitmproxy/addonmanager" in file or "mitmproxy/hooks" in file:
        return "mitmproxy hook dispatch"
    if "mitmproxy" in file:
        return "mitmproxy, the rest"
    if "asyncio" in file or "selectors" in file:
        return "asyncio"
    if file == "~" and callers:
        return category(max(callers.items(), key=lambda kv: kv[1][3])[0], None)
    return "other Python"


def by_category(stats: dict[Key, tuple], flows: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for key, v in stats.items():
        if is_wait(key):
            continue
        out[category(key, v[4])] += v[2] / flows * 1e6
    return out


def is_wait(key: Key) -> bool:
    return key[2].startswith("<method 'poll'")  # waiting for sockets, not work


def short(key: Key) -> str:
    file = key[0].split("site-packages/")[-1].split("/addon/")[-1]
    return f"{file}:{key[1]}({key[2]})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", choices=sorted(SORTS), default="tottime")
    args = ap.parse_args(argv)
    (sa, na), (sb, nb) = load(args.a), load(args.b)
    print(f"A: {args.a} ({na} flows)\nB: {args.b} ({nb} flows)\n")
    ca, cb = by_category(sa, na), by_category(sb, nb)
    print(f"{'µs of own time per flow':28s} {'A':>9s} {'B':>9s} {'B - A':>9s}")
    for name in sorted(set(ca) | set(cb), key=lambda n: -cb[n]):
        print(f"{name:28s} {ca[name]:9.1f} {cb[name]:9.1f} {cb[name] - ca[name]:+9.1f}")
    total_a, total_b = sum(ca.values()), sum(cb.values())
    print(f"{'total':28s} {total_a:9.1f} {total_b:9.1f} {total_b - total_a:+9.1f}\n")

    col = SORTS[args.sort]
    empty = (0, 0, 0.0, 0.0, {})
    rows = []
    for key in (set(sa) | set(sb)) - {k for k in (*sa, *sb) if is_wait(k)}:
        va, vb = sa.get(key, empty), sb.get(key, empty)
        rows.append((key, va[1] / na, vb[1] / nb, va[2] / na * 1e6, vb[2] / nb * 1e6, va[3] / na * 1e6, vb[3] / nb * 1e6))
    delta = {1: lambda r: r[2] - r[1], 2: lambda r: r[4] - r[3], 3: lambda r: r[6] - r[5]}[col]
    rows.sort(key=lambda r: -delta(r))
    print(f"per flow: {'calls A':>8s} {'B':>8s} {'own µs A':>9s} {'B':>7s} {'cum µs A':>9s} {'B':>8s}  (largest growth in {args.sort})")
    for key, *r in rows[: args.top]:
        print(f"          {r[0]:8.2f} {r[1]:8.2f} {r[2]:9.1f} {r[3]:7.1f} {r[4]:9.1f} {r[5]:8.1f}  {short(key)}")


if __name__ == "__main__":
    main()
