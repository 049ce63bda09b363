"""Every run's summary, kept on the mitmproxy flow (README.md#seeing-runs-in-mitmweb-and-the-console).

`attach(run)` stores a JSON-able record in `flow.metadata["datakit"]` (saved
with `-w`, shown by the `Datakit` contentview), marks failed flows and names
the failing node in the flow comment. The record is cheap on purpose: per
node its name, type, status and clock readings; values only when the run was
traced (debug on), and then redacted as the trace redacts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .trace import PLAN_COMPLETE, PLAN_ERROR

if TYPE_CHECKING:
    from mitmproxy import flow as mflow

    from .runtime import FlowRun

METADATA_KEY = "datakit"
SUMMARY_VERSION = 1
ABANDONED = "abandoned"  # the flow ended (client gone, upstream error) before the run finished
FAILED_MARKER = ":x:"  # one of mitmproxy's emoji markers (`flow.mark`)


def run_status(run: FlowRun) -> str:
    if run.failure is not None:
        return PLAN_ERROR
    return PLAN_COMPLETE if run.finished else ABANDONED


def summarize(run: FlowRun, ended: float) -> dict[str, Any]:
    """The summary record of `run`, `ended` being a `perf_counter()` reading.
    Runs for every flow: plain loops, no rounding (µs matter here)."""
    start = run.started
    node_start, node_end, status, errors = run.node_start, run.node_end, run.status, run.errors
    nodes = []
    for i, name, type_name in run.plan.declared:  # implicit nodes: not in the workflow's `nodes`
        began, done = node_start[i], node_end[i]
        entry: dict[str, Any] = {
            "name": name,
            "type": type_name,
            "status": status[i],
            "start": None if began is None else began - start,  # seconds since the run started
            "end": None if done is None else done - start,
        }
        if errors[i] is not None:
            entry["error"] = errors[i]
        nodes.append(entry)
    failure = run.failure
    record: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "workflow": run.workflow.name,
        "status": PLAN_ERROR if failure is not None else PLAN_COMPLETE if run.finished else ABANDONED,  # run_status
        "request_id": run.flow.id,
        "started_at": run.started_wall,
        "duration": ended - start,
        "debug": run.trace is not None,
        "failure": None if failure is None else {
            "node": failure.name, "type": failure.node_type, "index": failure.index, "error": failure.message,
        },
        "nodes": nodes,
    }
    if run.trace is not None:
        record["trace"] = run.report()  # the values, redacted (debug runs only)
    return record


def attach(run: FlowRun, ended: float) -> dict[str, Any]:
    """Store the summary on the flow; mark it and say why when the run failed."""
    record = summarize(run, ended)
    flow = run.flow
    flow.metadata[METADATA_KEY] = record
    status = record["status"]
    failure = record["failure"]
    if failure is not None:
        line = f"datakit: {record['workflow']} failed at node {failure['node']} ({failure['type']}): {failure['error']}"
        if not flow.marked:  # a user's marker stays
            flow.marked = FAILED_MARKER
    else:
        line = f"datakit: {record['workflow']} {status} in {record['duration'] * 1000:.1f} ms"
    if not flow.comment:
        flow.comment = line
    elif failure is not None and line not in flow.comment:
        flow.comment = f"{flow.comment}\n{line}"
    return record


def from_flow(flow: mflow.Flow | None) -> Mapping[str, Any] | None:
    """The summary a flow carries (live or loaded from a file), if any."""
    if flow is None:
        return None
    record = flow.metadata.get(METADATA_KEY)
    if isinstance(record, Mapping) and isinstance(record.get("nodes"), list):
        return record
    return None
