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
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mitmproxy import http

from .client_response import drop_forbidden_body
from .errors import CodecError, RunAborted, WorkflowFailed
from .hosts import AmbiguousHost, other_hosts
from .originals import client_request, keep_client_request, keep_upstream_response
from .ports import Phase
from .redaction import safe_url
from .restore import ResponseRestorer
from .runtime import FlowRun, Services
from .scrub import request_has_secrets, scrub_request, scrub_response
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


def _client_id(flow: http.HTTPFlow) -> str:
    return flow.client_conn.id if flow.client_conn is not None else ""


def json_response(status: int, body: Any) -> http.Response:
    return http.Response.make(status, json.dumps(body).encode(), {"Content-Type": "application/json"})



class Engine:
    """Selects the workflow for each flow and runs it through both phases."""

    def __init__(
        self,
        services: Services | None = None,
        debug: Callable[[], bool] = lambda: False,
        record_trace: bool = False,
        scrub_records: bool = True,
    ) -> None:
        self.services = services or Services()
        self.debug = debug
        # record a trace for every run without debug's other effects (offline runs)
        self.record_trace = record_trace
        # replace secret-derived request fields once the request is sent,
        # before mitmproxy records the flow (offline runs keep them real)
        self.scrub_records = scrub_records
        # puts the real values back into a response scrubbed for the record
        # just before mitmproxy sends it; none: responses are not scrubbed
        self.restorer: ResponseRestorer | None = None
        self.workflows: Sequence[Workflow] = []
        self.runs: dict[str, FlowRun] = {}
        # client connection id -> its flows' runs (HTTP/2: many per connection)
        self.runs_by_client: dict[str, dict[str, FlowRun]] = {}

    def select(self, flow: http.HTTPFlow) -> Workflow | None:
        """The workflow for the flow. Raises `AmbiguousHost` when another
        host the request names (a second Host field, a Host header that is
        not the destination, an absolute-form target in reverse mode) would
        pick another workflow: the upstream may serve either host, so a
        `hosts` guard could be skipped by naming the guarded host in the
        other place."""
        facts = RequestFacts(flow)  # read once, tested against every workflow
        chosen = self._first(facts)
        if not facts.host_read:  # no workflow up to the chosen one looked at the host: no other host can matter
            return chosen
        for host in other_hosts(flow, facts.host):
            if self._first(facts.with_host(host)) is not chosen:
                raise AmbiguousHost(facts.host, host)
        return chosen

    def _first(self, facts: RequestFacts) -> Workflow | None:
        for wf in self.workflows:
            if wf.applies_to(facts.flow, facts):
                return wf
        return None

    def _select_or_refuse(self, flow: http.HTTPFlow) -> Workflow | None:
        """`select`; a flow whose hosts disagree is answered 400 instead."""
        try:
            return self.select(flow)
        except AmbiguousHost as e:
            logger.warning(
                "Datakit: refused %s %s: the request names the hosts %r and %r, which select different "
                "workflows (a Host header that is not the destination, several Host fields, or an "
                "absolute-form target): 400 [request_id %s]",
                flow.request.method, safe_url(flow.request.url), e.host, e.other, flow.id,
            )
            flow.response = json_response(400, {"message": "Bad request: the request names more than one host",
                                                "request_id": flow.id})
            return None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """mitmproxy streams this request (stream_large_bodies, a declared
        size over it). A workflow with work before proxying (a body read or
        write, but also an exit guard or a header rewrite) cannot run on it:
        mitmproxy calls the request hook only after the body went upstream,
        and mitmproxy 12 offers an addon no way to buffer it after all (it
        decides again while the body arrives). Fail closed: the flow is
        killed before anything goes upstream, and the log says why."""
        if flow.request.stream and flow.response is None:
            wf = self._select_or_refuse(flow)
            if wf is not None and _acts_on_request(wf):
                self._refuse_streamed(flow, wf, "request")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """As `requestheaders`, for the upstream's response: killed before
        any of it reaches the client."""
        response = flow.response
        if response is not None and response.stream:
            run = self.runs.get(flow.id)
            if run is not None and not run.finished and _acts_on_response(run):
                self._refuse_streamed_response(run)

    def _refuse_streamed_response(self, run: FlowRun) -> None:
        self._refuse_streamed(run.flow, run.workflow, "response")
        self._end(run)  # the flow is killed: no answer to write

    def _refuse_streamed(self, flow: http.HTTPFlow, wf: Workflow, which: str) -> None:
        logger.error(
            "Datakit: workflow %s acts on the %s, but mitmproxy streams its body (stream_large_bodies=%s); "
            "the flow is killed. Raise stream_large_bodies above the bodies this workflow handles. [%s %s, request_id %s]",
            wf.name, which, self.services.option("stream_large_bodies"),
            flow.request.method, flow.request.pretty_url, flow.id,
        )
        flow.kill()

    async def request(self, flow: http.HTTPFlow) -> FlowRun | None:
        """Run the pre-proxy phase; returns the flow's run (None: no workflow)."""
        run, pending = self.start_request(flow)
        if pending is not None:
            await pending
        return run

    def start_request(self, flow: http.HTTPFlow) -> tuple[FlowRun | None, Coroutine[Any, Any, None] | None]:
        """The request phase, as far as it runs without waiting: the flow's
        run (None: no workflow) and a coroutine that finishes the phase, or
        None when it is over (every node a plain function: the flow costs
        no coroutine of ours beyond the hook's)."""
        if flow.response is not None or flow.id in self.runs:
            return None, None  # answered by another addon already, or a replay of ours
        wf = self._select_or_refuse(flow)
        if wf is None:
            return None, None
        if flow.request.stream and _acts_on_request(wf):
            # streamed once the body grew past stream_large_bodies (no
            # declared size): it went upstream already, too late to act
            self._refuse_streamed(flow, wf, "request")
            return None, None
        keep_client_request(flow)  # for `datakit replay` of a saved flow
        debug = wf.debug or self.debug()
        run = FlowRun(wf, flow, self.services, tracing=debug)
        run.trace_to_client = debug and trace_requested(flow)
        if self.record_trace and run.trace is None:
            run.trace = Trace(wf.redactor)
        # tracked (for client_gone, the response hook) only once it must wait
        return run, self._phase(run, Phase.REQUEST, self._request_done)

    def _request_done(self, run: FlowRun) -> None:
        if run.client_response.exit is not None:
            self._finish(run)
        elif _done_before_proxying(run):
            # _finish less the answer to apply (there is none to write)
            keep_upstream_response(run.flow, unchanged=True)
            self._done(run)
        else:
            self._track(run)  # the response hook finishes it

    async def response(self, flow: http.HTTPFlow) -> None:
        pending = self.start_response(flow)
        if pending is not None:
            await pending

    def start_response(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """The response phase (see `start_request`) and the client's answer."""
        run = self.runs.get(flow.id)
        if run is None or run.finished:
            return None
        response = flow.response
        if response is not None and response.stream and _acts_on_response(run):
            # streamed once the body grew past stream_large_bodies (no
            # declared size): it went to the client already, too late to act
            self._refuse_streamed_response(run)
            return None
        keep_upstream_response(flow, unchanged=_leaves_response_alone(run))
        then = self._finish_switched if response is not None and response.status_code == 101 else self._finish
        if not run.plan.needs_response_phase:
            then(run)
            return None
        return self._phase(run, Phase.RESPONSE, then)

    def _phase(self, run: FlowRun, phase: Phase, then: Callable[[FlowRun], None]) -> Coroutine[Any, Any, None] | None:
        """Run `phase`, then `then(run)`; a failure answers the flow instead."""
        try:
            pending = run.step_phase(phase)
        except Exception as e:  # noqa: BLE001 - never let a bug take the proxy down
            self._stopped(run, e)
            return None
        if pending is None:
            then(run)
            return None
        self._track(run)  # node tasks in flight: a client that goes away aborts them
        return self._finish_phase(run, pending, then)

    async def _finish_phase(self, run: FlowRun, pending: Coroutine[Any, Any, None], then: Callable[[FlowRun], None]) -> None:
        try:
            await pending
        except Exception as e:  # noqa: BLE001
            self._stopped(run, e)
            return
        then(run)

    def _stopped(self, run: FlowRun, error: Exception) -> None:
        """A phase ended early: a node failed, the run was given up, or a bug."""
        if isinstance(error, WorkflowFailed):
            self._fail(run, error)
        elif isinstance(error, RunAborted):
            self._abandon(run)
        else:
            self._crash(run, error)

    async def aclose(self) -> None:
        for run in list(self.runs.values()):
            await run.cancel()
            self._scrub(run)  # mitmproxy's Save addon writes in-flight flows at shutdown, after us
        self.runs.clear()
        self.runs_by_client.clear()

    def abort(self, run: FlowRun, reason: str) -> None:
        """Give a run up (its client went away): in-flight calls are
        cancelled now; the phase awaiting them returns at once and the
        flow is killed, so mitmproxy neither answers nor forwards it."""
        in_phase = run.waiting  # then the awaiting phase calls _abandon
        run.abort(reason)
        if not in_phase:
            self._abandon(run)

    def client_gone(self, client_id: str, reason: str = "client disconnected") -> int:
        """Abort the runs of every flow of a client connection; how many."""
        runs = list(self.runs_by_client.get(client_id, {}).values())
        for run in runs:
            self.abort(run, reason)
        return len(runs)

    def _track(self, run: FlowRun) -> None:
        self.runs[run.flow.id] = run
        self.runs_by_client.setdefault(_client_id(run.flow), {})[run.flow.id] = run

    def _untrack(self, flow: http.HTTPFlow) -> FlowRun | None:
        run = self.runs.pop(flow.id, None)
        if run is not None:
            client = _client_id(flow)
            of_client = self.runs_by_client.get(client)
            if of_client is not None:
                of_client.pop(flow.id, None)
                if not of_client:
                    del self.runs_by_client[client]
        return run

    def _abandon(self, run: FlowRun) -> None:
        self._untrack(run.flow)
        run.finished = True
        logger.info("Datakit: workflow %s abandoned [request_id %s]: %s", run.workflow.name, run.request_id, run.aborted)
        if run.flow.killable:
            run.flow.kill()
        self._scrub(run)
        self._attach(run)

    async def error(self, flow: http.HTTPFlow) -> None:
        run = self._untrack(flow)
        if run is not None:
            await run.cancel()
            self._scrub(run)
            self._attach(run)

    # -- building the answer -------------------------------------------------

    def _finish(self, run: FlowRun) -> None:
        """The response goes out: an exit's or the upstream's, with the
        workflow's `response` inputs, status and trace applied."""
        try:
            run.client_response.apply(run.flow)
        except CodecError as e:
            self._fail(run, run.implicit_failed("response", str(e)))
            return
        except Exception as e:  # noqa: BLE001
            self._crash(run, e)
            return
        self._done(run)
        self._scrub_response(run)

    def _finish_switched(self, run: FlowRun) -> None:
        """`_finish` for an upstream that switched protocols (101, a
        WebSocket): its connection speaks the new protocol from now on, so
        the client can only get that 101. Another answer (a late exit, a
        status) made mitmproxy fail on the upstream's next bytes and leave
        the client hanging; the flow is killed instead, and the log says why."""
        self._finish(run)
        response = run.flow.response
        if response is not None and response.status_code != 101 and run.flow.killable:
            logger.error(
                "Datakit: workflow %s answers %d to a request the upstream switched to another protocol (101); "
                "the flow is killed [%s %s, request_id %s]",
                run.workflow.name, response.status_code, run.flow.request.method, safe_url(run.flow.request.pretty_url),
                run.request_id,
            )
            run.flow.kill()

    def _fail(self, run: FlowRun, failure: WorkflowFailed) -> None:
        # the message may quote values derived from a secret; so may the
        # upstream URL, which the workflow may have rewritten from one
        redactor = run.redactor()
        failure.message = redactor.text(failure.message)
        logger.error(
            "Datakit: workflow %s failed at node %r (%s, #%s) for %s %s (upstream %s) [request_id %s]: %s",
            run.workflow.name, failure.name, failure.node_type, "-" if failure.index is None else failure.index,
            run.flow.request.method, safe_url(client_request(run.flow).pretty_url, redactor),
            safe_url(run.flow.request.pretty_url, redactor), run.request_id, failure.message,
        )
        run.failure = failure
        run.flow.response = json_response(500, error_body(run, failure))
        self._done(run)

    def _crash(self, run: FlowRun, error: Exception) -> None:
        logger.error("Datakit: internal error in workflow %s", run.workflow.name, exc_info=error)
        self._fail(run, WorkflowFailed(None, "datakit", "internal", f"internal error: {type(error).__name__}: {error}"))

    def _done(self, run: FlowRun) -> None:
        """The run is over and the flow answered: bookkeeping, then the
        trace report for the client and the body rules of the answer."""
        self._end(run)
        if run.trace is not None and run.trace_to_client and run.flow.response is not None:
            report = run.report()
            response = run.flow.response
            response.headers.pop("content-encoding", None)
            response.headers["content-type"] = "application/json"
            response.content = json.dumps(report).encode()
        drop_forbidden_body(run.flow)

    def _end(self, run: FlowRun) -> None:
        """Every run ends here: untracked, its records scrubbed, its summary kept."""
        run.finished = True
        self._untrack(run.flow)
        self._scrub(run)
        self._attach(run)

    def _scrub(self, run: FlowRun) -> None:
        """The request is sent (or never will be: answered here), and
        mitmproxy records the flow in addons that run after this one."""
        if self.scrub_records:
            try:
                scrub_request(run)
            except Exception:  # a record must never cost the answer
                logger.exception("Datakit: scrubbing the recorded request of workflow %s failed", run.workflow.name)

    def _scrub_response(self, run: FlowRun) -> None:
        """The workflow's answer (exit, `response` node) holds values built
        from a secret: recorders see them scrubbed, the restorer gives the
        client the real ones (restore.py). Only for a workflow's own answer:
        a failure's 500 body is redacted already."""
        restorer = self.restorer
        if restorer is None or not restorer.active or not self.scrub_records:
            return
        try:
            # a trace report sent to the client replaced the body (redacted)
            scrubbed = scrub_response(run, body=not (run.trace is not None and run.trace_to_client))
        except Exception:  # left unscrubbed (scrub_response undoes a partial scrub)
            logger.exception("Datakit: scrubbing the recorded response of workflow %s failed", run.workflow.name)
            return
        if scrubbed is not None:
            restorer.hold(run.flow, scrubbed)

    def _attach(self, run: FlowRun) -> None:
        """Keep the run's summary (and trace, when traced) on the flow: the
        `Datakit` contentview, markers, saved flows (summary.py)."""
        attach(run, time.perf_counter())


def _done_before_proxying(run: FlowRun) -> bool:
    """Whether the run has nothing left to do once its request phase is
    over: no response phase, no change to the upstream's response, no trace
    for the client, no recorded request to scrub once it is sent. Such a
    run ends with its request phase (the common request-rewriting
    workflow): summary and originals are kept then, and its flow's
    response hook has nothing to do."""
    return _leaves_response_alone(run) and not request_has_secrets(run)


def _leaves_response_alone(run: FlowRun) -> bool:
    """Whether the client gets the upstream's response as it is: no
    response phase, no patch or status, no trace report for the client."""
    answer = run.client_response
    return not (run.plan.needs_response_phase or answer.changes_upstream_response or run.trace_to_client)


def _acts_on_request(wf: Workflow) -> bool:
    """Whether the workflow works before proxying or reads or writes the
    request body: on a streamed request all of it would come too late."""
    return wf.plan.acts_before_proxying or "request" in wf.plan.buffered_bodies


def _acts_on_response(run: FlowRun) -> bool:
    """Whether the run still has effects on the upstream's response, or
    reads its body: with a streamed response all of it would come too late."""
    return (
        run.plan.changes_response_late
        or "response" in run.plan.buffered_bodies
        or run.client_response.changes_upstream_response
        or run.trace_to_client
    )
