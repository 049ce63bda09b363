"""Guard "reload", in process: what loading workflow files costs, and how
long the event loop stalls while the addon reloads.

- load time of a valid workflow of 1, 100 and 5,000 jq nodes;
- the largest event-loop stall during a load, measured by a probe task that
  sleeps 1 ms again and again and records its largest overshoot: loading
  on the loop (how reloads ran before) vs in the addon's loader thread
  (now), for the 5,000-node file, a YAML alias bomb and a file nested
  1,000,000 deep.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .proxy import Result, Settings

STALL_GOAL = 0.100  # seconds: the most a reload may delay other flows


def jq_workflow(nodes: int) -> str:
    return "nodes:\n" + "".join(
        f"  - {{name: N{i}, type: jq, jq: '.a', input: request.headers}}\n" for i in range(nodes))


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs": 9 ** levels strings in a few hundred bytes."""
    anchors = ['l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    anchors += [f"l{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "nodes:\n  - {name: BOMB, type: static, values: {" + ", ".join(anchors) + "}}\n"


def deep_nesting(depth: int = 1_000_000) -> str:
    return "[" * depth + "]" * depth


async def _probe_stall(work: Callable[[], Any]) -> tuple[float, float]:
    """(largest overshoot of a 1 ms sleep, seconds `work` took) while
    `await work()` runs."""
    worst = 0.0
    stop = False

    async def probe() -> None:
        nonlocal worst
        while not stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t0 - 0.001)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.05)
    worst = 0.0  # the probe's own start-up does not count
    t0 = time.perf_counter()
    await work()
    took = time.perf_counter() - t0
    await asyncio.sleep(0.01)
    stop = True
    await task
    return worst, took


def run(settings: Settings, wd: Path) -> Result:
    from mitmdatakit import reloading

    logging.getLogger("mitmdatakit").setLevel(logging.CRITICAL)
    res = Result("reload guard")
    repeat = 1 if settings.quick else 3
    files = Path(tempfile.mkdtemp(prefix="guard-reload-", dir=wd))

    def write(name: str, text: str) -> Path:
        path = files / name
        path.write_text(text)
        return path

    # -- load time ----------------------------------------------------------
    for n in (1, 100, 5000):
        path = write(f"jq{n}.yaml", jq_workflow(n))
        best = float("inf")
        for _ in range(repeat):
            outcome = reloading.load_outcome(path)
            assert outcome.workflows, outcome.error
            best = min(best, outcome.seconds)
        res.raw[f"load_{n}_nodes_s"] = best
        res.row(f"load a {n:,}-node workflow (best of {repeat})", f"{best * 1000:,.1f} ms")

    # -- event-loop stall during a reload ------------------------------------
    cases = {
        "5,000 jq nodes (valid)": write("jq5000.yaml", jq_workflow(5000)),
        "YAML alias bomb (9 levels, 9**9 strings)": write("bomb.yaml", alias_bomb()),
        "YAML nested 1,000,000 deep": write("deep.yaml", deep_nesting()),
        "JSON nested 1,000,000 deep": write("deep.json", deep_nesting()),
    }
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-reload")
    try:
        for label, path in cases.items():
            arms: dict[str, Callable[[], Any]] = {"on the loop (before)": lambda p=path: _sync(reloading.load_outcome, p)}
            arms["loader thread (now)"] = lambda p=path: asyncio.get_running_loop().run_in_executor(loader, reloading.load_outcome, p)
            for arm, work in arms.items():
                stalls, took = [], []
                for _ in range(repeat):
                    stall, seconds = asyncio.run(_probe_stall(work))
                    stalls.append(stall)
                    took.append(seconds)
                worst = max(stalls)
                res.raw[f"stall {label} {arm}"] = {"stalls_s": stalls, "load_s": took}
                now = arm.startswith("loader")
                res.row(f"max loop stall, {label}, {arm}",
                        f"{worst * 1000:,.1f} ms (load {min(took) * 1000:,.0f} ms)",
                        f"< {STALL_GOAL * 1000:.0f} ms" if now else "", worst < STALL_GOAL if now else None)
    finally:
        loader.shutdown(wait=True)
    return res


async def _sync(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


__all__ = ["alias_bomb", "deep_nesting", "jq_workflow", "run"]
