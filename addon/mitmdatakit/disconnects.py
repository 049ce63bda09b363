"""Runs whose client went away are given up (their calls aborted).

mitmproxy runs an addon's `request`/`response` hook as a task and pauses the
flow's stream layer until the hook returns, so the flow's `error` hook only
fires after the run is over. The connection layer above is not paused: on
the client's FIN or RST it closes the connection, and `client_disconnected`
fires at once; the addon then aborts the runs of that connection
(`Engine.client_gone`, runs indexed by client connection id).

As a safety net (mitmproxy documents no such ordering) this watcher also
polls, a few times a second, the `CAN_READ` bit of each awaiting run's
client connection, which mitmproxy's connection handler clears as soon as
it reads the end of the stream. An aborted run's hook returns at once with
the flow killed.

HTTP/2: one connection, many flows. A closed connection aborts all of its
runs; a single stream's reset (RST_STREAM) is queued in the paused stream
layer and not visible to addons, so such a run finishes normally and
mitmproxy drops its answer.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import http
from mitmproxy.connection import ConnectionState

from .engine import Engine

logger = logging.getLogger("mitmdatakit")

# Seconds between checks: an abandoned run's calls are aborted within this
# (plus a scheduling delay); a check costs a few attribute reads per
# awaiting run.
DISCONNECT_POLL_INTERVAL = 0.25


def client_gone(flow: http.HTTPFlow) -> bool:
    """The client closed or reset its connection (a half-close counts too:
    mitmproxy itself treats a client's FIN as the end of its interest)."""
    conn = flow.client_conn
    return conn is not None and not (conn.state & ConnectionState.CAN_READ)


def abort_abandoned(engine: Engine) -> int:
    """Abort every awaiting run whose client is gone; how many."""
    gone = [run for run in engine.runs.values() if run.waiting and client_gone(run.flow)]
    for run in gone:
        engine.abort(run, "client connection closed (seen by the watcher)")
    return len(gone)


async def watch_disconnects(engine: Engine, interval: float = DISCONNECT_POLL_INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        if not engine.runs:
            continue
        try:
            abort_abandoned(engine)
        except Exception:  # the watcher must survive anything (it logs)
            logger.exception("Datakit: checking for disconnected clients failed")


__all__ = ["DISCONNECT_POLL_INTERVAL", "abort_abandoned", "client_gone", "watch_disconnects"]
