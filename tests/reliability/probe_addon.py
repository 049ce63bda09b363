"""Test-only mitmproxy addon: reports the proxy's internals on a special host.

Loaded *before* the Datakit script (``script=[PROBE_SCRIPT, DEFAULT_SCRIPT]``)
so it answers ``http://datakit-probe.test/`` itself and Datakit never sees
that flow. The JSON answer holds:

- ``tasks``: ``len(asyncio.all_tasks())`` on mitmproxy's event loop, and
  ``task_names``: how many of each coroutine (to tell what leaked);
- ``fds``: open file descriptors of the process (``/proc/self/fd``);
- ``runs``: flows the Datakit engine still tracks (``Engine.runs``);
- ``pooled``: idle keep-alive connections in Datakit's shared aiohttp pool
  (these legitimately hold sockets between flows).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os

from mitmproxy import ctx, http

PROBE_HOST = "datakit-probe.test"


def _pooled(datakit) -> int | None:
    try:
        session = datakit.engine.services._session
        if session is None or session.closed:
            return 0
        conns = session.connector._conns  # {key: deque[(protocol, t)]}
        return sum(len(v) for v in conns.values())
    except Exception:  # noqa: BLE001 - private API of aiohttp; best effort
        return None


def _task_name(task: asyncio.Task) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__name__


class Probe:
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.pretty_host != PROBE_HOST:
            return
        datakit = ctx.master.addons.get("datakit")
        tasks = [t for t in asyncio.all_tasks() if not t.done()]
        names = collections.Counter(_task_name(t) for t in tasks)
        report = {
            "tasks": len(tasks),
            "task_names": dict(names.most_common()),
            "fds": len(os.listdir("/proc/self/fd")),
            "runs": len(datakit.engine.runs) if datakit is not None else None,
            "pooled": _pooled(datakit) if datakit is not None else None,
        }
        flow.response = http.Response.make(200, json.dumps(report).encode(), {"content-type": "application/json"})


addons = [Probe()]
