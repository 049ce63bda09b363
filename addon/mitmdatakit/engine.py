"""Running workflows on flows: the part shared by the mitmproxy addon, the
`datakit run` command and the pytest plugin.

`Engine.request(flow)` runs the pre-proxy phase (and answers the flow when an
exit fired or a node failed); `Engine.response(flow)` runs the rest once the
upstream answered. The engine never blocks: all waiting is async.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import http

from .codecs import TRANSFER_HEADERS, encode_body, encode_headers, header_lookup, write_message
from .errors import CodecError
from .nodes.base import Phase
from .runtime import FlowRun, Services, WorkflowFailed
from .summary import METADATA_KEY as METADATA_KEY  # re-exported: offline.py
from .summary import attach
from .trace import Trace
from .workflow import RequestFacts, Workflow

logger = logging.getLogger("mitmdatakit")

TRACE_HEADER = "x-datakit-debug-trace"
TRACE_OFF_VALUES = frozenset({"0", "false", "off"})


def trace_requested(flow: http.HTTPFlow) -> bool:
    value = flow.request.headers.get(TRACE_HEADER)
    return value is not None and value.strip().lower() not in TRACE_OFF_VALUES


def error_body(run: FlowRun, failure: WorkflowFailed) -> dict[str, Any]:
    if run.debug:
        return {
            "message": "node execution error",
            "request_id": run.request_id,
            "error": failure.message,
            "node": {"index": failure.index, "name": failure.name, "type": failure.node_type},
        }
    return {"message": "An unexpected error occurred", "request_id": run.request_id}


def _set_field(fields: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """`headers[name] = value` on a field list: the first field of that name
    (any case) gets the value, further ones go; none: appended."""
    out: list[tuple[str, str]] = []
    done = False
    for k, v in fields:
        if k.lower() == name:
            if not done:
                out.append((k, value))
                done = True
        else:
            out.append((k, v))
    if not done:
        out.append((name, value))
    return out


def json_response(status: int, body: Any) -> http.Response:
    return http.Response.make(status, json.dumps(body).encode(), {"Content-Type": "application/json"})



class Engine:
    """Selects the workflow for each flow and runs it through both phases."""

    def __init__(
        self,
        services: Services | None = None,
        debug: Callable[[], bool] = lambda: False,
        record_trace: bool = False,
    ) -> None:
        self.services = services or Services()
        self.debug = debug
        # record a trace for every run without debug's other effects (offline runs)
        self.record_trace = record_trace
        self.workflows: Sequence[Workflow] = []
        self.runs: dict[str, FlowRun] = {}

    def select(self, flow: http.HTTPFlow) -> Workflow | None:
        facts = RequestFacts(flow)  # read once, tested against every workflow
        for wf in self.workflows:
            if wf.applies_to(flow, facts):
                return wf
        return None

    async def request(self, flow: http.HTTPFlow) -> FlowRun | None:
        """Run the pre-proxy phase; returns the flow's run (None: no workflow)."""
        if flow.response is not None or flow.id in self.runs:
            return None  # answered by another addon already, or a replay of ours
        wf = self.select(flow)
        if wf is None:
            return None
        debug = wf.debug or self.debug()
        run = FlowRun(wf, flow, self.services, tracing=debug)
        run.trace_to_client = debug and trace_requested(flow)
        if self.record_trace and run.trace is None:
            run.trace = Trace(wf.redactor)
        self.runs[flow.id] = run
        try:
            await run.run_phase(Phase.REQUEST)
        except WorkflowFailed as failure:
            self._fail(run, failure)
            return run
        except Exception as e:  # noqa: BLE001 - never let a bug take the proxy down
            self._crash(run, e)
            return run
        if run.exit_response is not None:
            self._finish(run)
        return run

    async def response(self, flow: http.HTTPFlow) -> None:
        run = self.runs.get(flow.id)
        if run is None or run.finished:
            return
        try:
            if run.plan.needs_response_phase:
                await run.run_phase(Phase.RESPONSE)
        except WorkflowFailed as failure:
            self._fail(run, failure)
            return
        except Exception as e:  # noqa: BLE001
            self._crash(run, e)
            return
        self._finish(run)

    async def aclose(self) -> None:
        for run in list(self.runs.values()):
            await run.cancel()
        self.runs.clear()

    async def error(self, flow: http.HTTPFlow) -> None:
        run = self.runs.pop(flow.id, None)
        if run is not None:
            await run.cancel()
            self._attach(run)

    # -- building the answer -------------------------------------------------

    def _exit_response(self, run: FlowRun) -> http.Response:
        """The exit's answer. The header list is built here and handed to
        `Response.make` once: editing a made Response header by header and
        then setting its content costs as much again as making it. The
        result is the same message, fields in the same order:
        Content-Length first, then the exit's headers."""
        ex = run.exit_response
        assert ex is not None
        headers = ex.headers or {}
        fields = [(k, v) for k, v in encode_headers(headers) if k.lower() not in TRANSFER_HEADERS]
        if ex.body is not None and not isinstance(ex.body, (str, bytes)):
            # a JSON body is not encoded: a Content-Encoding would lie
            fields = [(k, v) for k, v in fields if k.lower() != "content-encoding"]
        data, content_type = encode_body(ex.body, header_lookup(headers, "content-type"))
        if content_type is not None:
            fields = _set_field(fields, "content-type", content_type)
        raw = [(b"content-length", b"0")]  # set from the content by make()
        raw += [(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in fields]
        # make() sets the content as `response.content = data` does: encoded
        # per Content-Encoding, Content-Length recomputed in place
        return http.Response.make(ex.status, data, raw)

    def _finish(self, run: FlowRun) -> None:
        """The response goes out: an exit's or the upstream's, with the
        workflow's `response` inputs, status and trace applied."""
        flow = run.flow
        try:
            if run.exit_response is not None:
                flow.response = self._exit_response(run)
            if flow.response is not None:
                patch = run.response_patch
                if patch:
                    write_message(flow.response, patch.get("headers"), patch.get("body"), set_body="body" in patch)
                if run.response_status is not None:
                    flow.response.status_code = run.response_status
        except CodecError as e:
            self._fail(run, WorkflowFailed(None, "response", "response", str(e)))
            return
        except Exception as e:  # noqa: BLE001
            self._crash(run, e)
            return
        self._done(run)

    def _fail(self, run: FlowRun, failure: WorkflowFailed) -> None:
        logger.error(
            "Datakit: workflow %s failed at node %r (%s, #%s) for %s %s [request_id %s]: %s",
            run.workflow.name, failure.name, failure.node_type, "-" if failure.index is None else failure.index,
            run.flow.request.method, run.flow.request.pretty_url, run.request_id, failure.message,
        )
        run.failure = failure
        run.flow.response = json_response(500, error_body(run, failure))
        self._done(run)

    def _crash(self, run: FlowRun, error: Exception) -> None:
        logger.error("Datakit: internal error in workflow %s", run.workflow.name, exc_info=error)
        self._fail(run, WorkflowFailed(None, "datakit", "internal", f"internal error: {type(error).__name__}: {error}"))

    def _done(self, run: FlowRun) -> None:
        run.finished = True
        self.runs.pop(run.flow.id, None)
        self._attach(run)
        if run.trace is not None and run.trace_to_client and run.flow.response is not None:
            report = run.report()
            response = run.flow.response
            response.headers.pop("content-encoding", None)
            response.headers["content-type"] = "application/json"
            response.content = json.dumps(report).encode()

    def _attach(self, run: FlowRun) -> None:
        """Keep the run's summary (and trace, when traced) on the flow: the
        `Datakit` contentview, markers, saved flows (summary.py)."""
        attach(run, time.perf_counter())
