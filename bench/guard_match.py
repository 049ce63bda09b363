"""The matcher's cost per flow, in process: selecting one of 100 workflows
with path and host rules, with Kong's normalization (`RequestFacts`) and
without it (the raw path and `pretty_host`, as before the bypass fixes).

The normalized path and host are computed once per flow and shared by all
workflows, so the cost is per flow, not per workflow.
"""

from __future__ import annotations

from typing import Any

from .nodes import per_call
from .proxy import Result, Settings

WORKFLOWS = 100
PATHS = {
    "plain": "/api/v1/users/42?x=1",  # no escape, no dot: the fast path
    "hostile": "/x/..//%61pi/./v1/%2e%2e/v1/us%65rs/42?x=1",
}


class RawFacts:
    """What `match` tested before: the path as sent, `pretty_host`."""

    __slots__ = ("flow", "host", "method", "path")

    def __init__(self, flow: Any) -> None:
        self.flow = flow
        self.method = flow.request.method.upper()
        self.host = flow.request.pretty_host.lower()
        self.path = flow.request.path.split("?", 1)[0]


def run(settings: Settings, wd: Any = None) -> Result:
    from mitmproxy.test import tflow, tutils

    from mitmdatakit.codecs import normalize_path
    from mitmdatakit.workflow import Match, RequestFacts

    matches = [Match.build({"hosts": [f"svc{i}.test", f"*.svc{i}.test"], "paths": [f"/svc{i}", f"~/re{i}/[0-9]+$"]}, "bench")
               for i in range(WORKFLOWS - 1)]
    matches.append(Match.build({"hosts": ["api.test"], "paths": ["/api/v1"]}, "bench"))

    def select(facts_type, flow) -> int:
        facts = facts_type(flow)
        return next((i for i, m in enumerate(matches) if m.test(facts)), -1)

    number = 300 if settings.quick else 1500
    res = Result("guard: match")
    for label, path in PATHS.items():
        flow = tflow.tflow(req=tutils.treq(host="api.test", path=path.encode(), headers=((b"host", b"API.test."),)))
        assert select(RequestFacts, flow) == WORKFLOWS - 1
        normalized = per_call(lambda: select(RequestFacts, flow), number)
        raw = per_call(lambda: select(RawFacts, flow), number)
        alone = per_call(lambda: normalize_path(path.partition("?")[0]), number * 10)
        res.row(f"{label} path: select among {WORKFLOWS} workflows, normalized", f"{normalized * 1e6:.1f} µs/flow")
        res.row(f"{label} path: same, raw path (before)", f"{raw * 1e6:.1f} µs/flow",
                "" if label == "plain" else "matches nothing: the bypass")
        res.row(f"{label} path: normalize_path alone", f"{alone * 1e6:.2f} µs")
        res.raw[label] = {"normalized_s": normalized, "raw_s": raw, "normalize_path_s": alone}
    _regex_rows(res, number)
    return res


def _regex_rows(res: Result, number: int) -> None:
    """What the time limit on `~` patterns costs (config_regex: the `regex`
    module with a timeout, against Python's `re` without one), and how long
    a backtracking pattern holds the loop before it gives up."""
    import re
    import time

    from mitmdatakit.config_regex import ConfigRegex

    pattern, path = "/re42/[0-9]+$", "/re42/12345"
    timed, plain = ConfigRegex(pattern), re.compile(pattern)
    res.row("`~` path test, regex module with its time limit", f"{per_call(lambda: timed.match(path), number * 10) * 1e6:.2f} µs")
    res.row("`~` path test, Python's re (before: no limit)", f"{per_call(lambda: plain.match(path), number * 10) * 1e6:.2f} µs")
    evil = ConfigRegex("/api/(a|aa)+$")
    t0 = time.perf_counter()
    evil.match("/api/" + "a" * 40 + "!")
    res.row("backtracking `~/api/(a|aa)+$` on 40 a's and `!`: gives up after", f"{(time.perf_counter() - t0) * 1000:.0f} ms",
            "re: 12 s, doubling per character")
