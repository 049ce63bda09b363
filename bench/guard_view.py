"""What every run's summary costs, in process: a whole flow through the
engine (request phase, an exit answers) with the summary attached, and with
attaching switched off (as before: only traced runs kept anything), for a
3-node and a 20-node workflow; plus the summary and the `Datakit` view's
text alone. The view renders only when someone looks at a flow.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .nodes import per_call
from .proxy import Result, Settings


def _workflow(nodes: int) -> dict[str, Any]:
    chain = [{"name": "N0", "type": "static", "values": {"a": 1}}]
    chain += [{"name": f"N{i}", "type": "jq", "input": f"N{i - 1}", "jq": "."} for i in range(1, nodes - 1)]
    chain.append({"name": "EXIT", "type": "exit", "inputs": {"body": f"N{nodes - 2}"}})
    return {"nodes": chain}


def run(settings: Settings, wd: Any = None) -> Result:
    from mitmproxy.test import tflow

    from mitmdatakit import engine as engine_module
    from mitmdatakit.config import load_path
    from mitmdatakit.contentview import render
    from mitmdatakit.engine import Engine
    from mitmdatakit.summary import summarize

    number = 300 if settings.quick else 2000
    res = Result("guard: view")
    loop = asyncio.new_event_loop()
    try:
        for size in (3, 20):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "wf.yaml"
                path.write_text(yaml.safe_dump(_workflow(size)))
                eng = Engine()
                eng.workflows = load_path(str(path))

            def flow_through() -> None:
                flow = tflow.tflow()
                loop.run_until_complete(eng.request(flow))

            flow_through()
            attach = engine_module.attach
            on: list[float] = []
            off: list[float] = []
            for _ in range(7):  # arms alternate: the machine's load hits both alike
                on.append(per_call(flow_through, number, repeat=1))
                engine_module.attach = lambda run, ended: None
                try:
                    off.append(per_call(flow_through, number, repeat=1))
                finally:
                    engine_module.attach = attach
            with_summary, without = min(on), min(off)
            flow = tflow.tflow()
            run_ = loop.run_until_complete(eng.request(flow))
            alone = per_call(lambda: summarize(run_, run_.started), number)
            attached = per_call(lambda: attach(run_, run_.started), number)
            record = flow.metadata["datakit"]
            view = per_call(lambda: render(record), max(number // 10, 50))
            cost = with_summary - without
            res.row(f"{size}-node workflow: flow through the engine, summary on", f"{with_summary * 1e6:.1f} µs/flow")
            res.row(f"{size}-node workflow: same, summary off (before)", f"{without * 1e6:.1f} µs/flow")
            res.row(f"{size}-node workflow: summary's share", f"{cost * 1e6:+.1f} µs/flow ({cost / without:+.1%})")
            res.row(f"{size}-node workflow: summarize() alone", f"{alone * 1e6:.1f} µs")
            res.row(f"{size}-node workflow: attach() alone (summary, metadata, comment)", f"{attached * 1e6:.1f} µs")
            res.row(f"{size}-node workflow: Datakit view text (when viewed)", f"{view * 1e6:.1f} µs")
            res.raw[f"{size}_nodes"] = {"with_s": with_summary, "without_s": without, "summarize_s": alone, "attach_s": attached, "render_s": view}
    finally:
        loop.close()
    return res
