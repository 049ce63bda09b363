"""bench.cold_flow, the in-process measure of the per-flow path (docs/benchmarks.md),
runs the real engine: a smoke test so that it cannot rot unnoticed."""

from __future__ import annotations

import re

from bench import cold_flow


def test_cold_flow_prints_hot_and_cold_figures(capsys):
    assert cold_flow.main(["--workflow", "overhead", "--workflow", "nomatch", "--flows", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    figures = {m["name"]: (float(m["hot"]), float(m["cold"])) for line in lines
               if (m := re.match(r"(?P<name>\w+) +hot +(?P<hot>[\d.]+) µs +cold +(?P<cold>[\d.]+) µs per flow", line))}
    assert set(figures) == {"overhead", "nomatch"}
    # the workflow runs (two jq nodes) and costs more than selecting none
    assert figures["overhead"][0] > figures["nomatch"][0] > 0


def test_the_overhead_workflow_really_runs():
    """The figure is for a run that wrote its headers, not for a no-op."""
    import asyncio

    from mitmproxy.test import tflow, tutils

    from mitmdatakit.config import load_text
    from mitmdatakit.engine import Engine
    from mitmdatakit.runtime import Services

    engine = Engine(Services())
    engine.workflows = [load_text(cold_flow.WORKFLOWS["overhead"])]
    flow = tflow.tflow(req=tutils.treq(path=b"/"))
    flow.response = None
    asyncio.run(engine.request(flow))
    assert flow.request.headers["x-bench-tag"] == "acme-gold"
    assert flow.metadata["datakit"]["status"] == "PLAN_COMPLETE"  # ended with its request phase
