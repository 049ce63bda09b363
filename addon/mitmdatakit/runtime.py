"""The async scheduler: runs one workflow's plan for one flow, phase by phase.

A node starts as soon as all of its dependencies have finished; plain
(synchronous) nodes run inline, coroutine nodes become tasks, so
independent calls overlap. A node error cancels everything still running.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Container, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from .bodies import DEFAULT_LIMIT
from .client_response import ClientResponse
from .codecs import json_type
from .errors import NodeError, RunAborted, WorkflowFailed
from .http_clients import CALLS, HttpClients
from .nodes.base import Outputs, Skip
from .ports import SELF, Phase, PortType
from .taint import strings
from .trace import (
    NODE_CANCELED,
    NODE_COMPLETE,
    NODE_ERROR,
    NODE_PENDING,
    NODE_RUNNING,
    NODE_SKIPPED,
    PLAN_COMPLETE,
    PLAN_ERROR,
    Redactor,
    Trace,
)

if TYPE_CHECKING:
    import aiohttp
    from mitmproxy import http
    from mitmproxy.options import Options
    from mitmproxy.optmanager import OptManager

    from .workflow import Workflow

logger = logging.getLogger("mitmdatakit")


class Services:
    """What all flows share: the pooled HTTP client, option values, node id,
    and resources node types create on first use (`shared`)."""

    def __init__(self, option: Callable[[str], Any] | None = None) -> None:
        self.clients = HttpClients()
        self.option = option or _default_option
        self.node_id = str(uuid.uuid4())
        # bytes, after decompression, of any body Datakit reads (the addon
        # sets it from datakit_body_size_limit; offline runs keep the default)
        self.body_size_limit: int = DEFAULT_LIMIT
        self._shared: dict[str, Any] = {}

    def shared(self, key: str, factory: Callable[[], Any]) -> Any:
        """The resource under `key`, made by `factory()` on first use; closed
        (its `aclose()`) with the services."""
        resource = self._shared.get(key)
        if resource is None:
            resource = self._shared[key] = factory()
        return resource

    def option_or(self, name: str, default: Any) -> Any:
        """An option's value; `default` where it does not exist (offline runs
        know only mitmproxy's own options)."""
        try:
            return self.option(name)
        except KeyError:
            return default

    def http(self) -> aiohttp.ClientSession:
        """The shared client session of `call` nodes (one per event loop;
        pooled keep-alive connections across flows)."""
        return self.clients.session(CALLS)

    async def aclose(self) -> None:
        await self.clients.aclose()
        shared, self._shared = self._shared, {}
        for key, resource in shared.items():
            try:
                await resource.aclose()
            except Exception:  # close the others anyway
                logger.exception("Datakit: closing %s failed", key)


_DEFAULT_OPTIONS: Options | None = None


def _default_option(name: str) -> Any:
    """Outside a running mitmproxy (offline runs): mitmproxy's defaults."""
    global _DEFAULT_OPTIONS
    if _DEFAULT_OPTIONS is None:
        from mitmproxy.options import Options

        _DEFAULT_OPTIONS = Options()
    return option_value(_DEFAULT_OPTIONS, name)


def option_value(options: OptManager | None, name: str) -> Any:
    """A mitmproxy option's current value, read through the public API;
    KeyError for a name no addon declared (or no options: outside mitmproxy)."""
    try:
        return getattr(options, name)
    except AttributeError:
        raise KeyError(name) from None


class FlowRun:
    """One workflow executing for one flow. Nodes see it through the narrow
    `context.NodeContext` (their `ctx`); everywhere else it is the `run`."""

    # one per flow: slots make it smaller and quicker to build and read
    __slots__ = (
        "_cancelled", "_finished", "_replaced_by_trace", "_tasks", "_wakeup", "aborted", "client_request",
        "client_response", "consumer", "credential", "ctx_plugin", "ctx_shared", "debug", "errors", "failure",
        "finished", "flow", "node_dispatched", "node_end", "node_start", "phase", "plan", "remaining", "services",
        "started", "started_wall", "status", "trace", "trace_to_client", "values", "workflow",
    )

    def __init__(self, workflow: Workflow, flow: http.HTTPFlow, services: Services, *, tracing: bool = False) -> None:
        plan = workflow.plan
        self.workflow = workflow
        self.plan = plan
        self.flow = flow
        self.services = services
        n = len(plan.nodes)
        self.values: list[Mapping[str, Any] | None] = [None] * n
        self.status: list[str] = [NODE_PENDING] * n
        self.errors: list[str | None] = [None] * n
        self.remaining = plan.dependency_counts.copy()
        # the run's timeline, kept for every run (summary.py): cheap clock reads
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.node_start: list[float | None] = [None] * n
        self.node_end: list[float | None] = [None] * n
        # when an async node's work was dispatched (traced runs: its `resume` duration)
        self.node_dispatched: list[float | None] = [None] * n
        self._replaced_by_trace = False
        self.phase = Phase.REQUEST
        self.trace: Trace | None = Trace(workflow.redactor) if tracing else None
        self.failure: WorkflowFailed | None = None
        self.debug = tracing  # debug error bodies (the workflow's `debug` or the addon option)
        self.trace_to_client = False  # the trace report replaces the response body
        self.finished = False  # the response went out
        # the effects on the client's response, applied by the engine
        self.client_response = ClientResponse()
        # property storage (kong.ctx.*, consumer, credential)
        self.ctx_shared: dict[str, Any] = {}
        self.ctx_plugin: dict[str, Any] = {}
        self.consumer: Any = None
        self.credential: Any = None
        self.client_request: tuple[str, int, str] | None = None  # before a property retargeted the upstream
        self._tasks: dict[asyncio.Task[Outputs], int] = {}
        self._cancelled: list[asyncio.Task[Outputs]] = []
        # Finished node tasks, in completion order, and the future that
        # wakes run_phase when one finishes. Cheaper than asyncio.wait(),
        # which re-registers a callback on every pending task at each wake
        # (O(n) per completion, O(n^2) for a fan-out of n calls).
        self._finished: deque[asyncio.Task[Outputs]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self.aborted: str | None = None  # why the run was given up, if it was

    # -- public --------------------------------------------------------------

    @property
    def request_id(self) -> str:
        return self.flow.id

    def respond(self, status: int, headers: Mapping[str, Any] | None, body: Any, node: str) -> None:
        """An exit node answers the client (the first exit wins)."""
        self.client_response.answer(status, headers, body, node)

    async def run_phase(self, phase: Phase) -> None:
        """Run every node of `phase` whose dependencies are met, until none is
        left. Raises WorkflowFailed on the first node error."""
        pending = self.step_phase(phase)
        if pending is not None:
            await pending

    def step_phase(self, phase: Phase) -> Coroutine[Any, Any, None] | None:
        """Start `phase`: the nodes that are plain functions run here, now.
        None when that finished the phase (no node became a task: the common
        case costs no coroutine and no wake-up); otherwise a coroutine that
        waits for the node tasks and runs what they unblock. Raises
        WorkflowFailed on the first node error (or the coroutine does)."""
        self.phase = phase
        status, remaining = self.status, self.remaining
        ready = deque([i for i in self.plan.phase_order[phase] if status[i] == NODE_PENDING and remaining[i] == 0])
        try:
            while ready:
                self._start(ready.popleft(), ready)
        except (WorkflowFailed, RunAborted) as stop:
            if self._cancelled:  # tasks started before the failure unwind first
                return self._drain_then_raise(stop)
            raise
        return self._wait_for_tasks() if self._tasks else None

    async def _wait_for_tasks(self) -> None:
        tasks = self._tasks
        finished = self._finished
        ready: deque[int] = deque()
        try:
            while tasks:
                if not finished:
                    self._wakeup = asyncio.get_running_loop().create_future()
                    try:
                        await self._wakeup
                    finally:
                        self._wakeup = None
                if self.aborted is not None:
                    raise RunAborted(self.aborted)
                while finished:
                    task = finished.popleft()
                    i = tasks.pop(task, None)
                    if i is None:
                        continue  # cancelled by a failure or cancel(): already accounted for
                    self._resume(i)
                    try:
                        result = task.result()
                    except Exception as e:  # noqa: BLE001 - any node failure fails the plan
                        self._fail(i, e)
                    self._complete(i, result, ready)
                while ready:
                    self._start(ready.popleft(), ready)
        except (WorkflowFailed, RunAborted):
            await self._drain()
            raise
        except asyncio.CancelledError:
            await self.cancel()
            raise

    async def _drain_then_raise(self, stop: WorkflowFailed | RunAborted) -> None:
        await self._drain()
        raise stop

    def _task_done(self, task: asyncio.Task[Outputs]) -> None:
        """Done-callback of every node task: queue it and wake run_phase."""
        self._finished.append(task)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def redactor(self) -> Redactor:
        """The workflow's vault values and, as this run computed them, the
        strings derived from them (taint.py): for free text such as error
        messages and log lines. Built on demand (failures, not every run)."""
        derived: list[str] = []
        plan = self.plan
        for j, ports in enumerate(plan.secret_outputs):
            out = self.values[j]
            if not ports or not out:
                continue
            derived.extend(strings([v for k, v in out.items() if k in ports]))
        if not derived:
            return self.workflow.redactor
        return Redactor([*self.workflow.redactor.secrets, *derived])

    def inputs_of(self, i: int) -> dict[str, Any]:
        """The inputs node `i` received (gathered again from the values)."""
        return self._gather(i)

    @property
    def waiting(self) -> bool:
        """Node tasks are in flight (a phase awaits them)."""
        return bool(self._tasks)

    def abort(self, reason: str) -> None:
        """Give the run up now, from outside the phase that awaits it: node
        tasks are cancelled (their I/O closes as they unwind) and the phase
        raises RunAborted instead of waiting for them."""
        if self.aborted is not None:
            return
        self.aborted = reason
        for task, i in list(self._tasks.items()):
            task.cancel()
            self._cancelled.append(task)
            self._set(i, NODE_CANCELED, "cancel")
        self._tasks.clear()
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def cancel(self) -> None:
        """Abort everything still running (the client went away, or a failure)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for i in list(self._tasks.values()):
            self._set(i, NODE_CANCELED, "cancel")
        self._tasks.clear()

    async def _drain(self) -> None:
        """Wait for cancelled tasks to unwind (they abort their I/O at once)."""
        tasks, self._cancelled = self._cancelled, []
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def report(self) -> dict[str, Any]:
        """The trace report (tracing runs only)."""
        assert self.trace is not None
        if self.trace_to_client:
            self._replace_response_by_trace()
        nodes = []
        for i, node in enumerate(self.plan.nodes):
            # implicit nodes too: Kong lists `request` beside the declared ones
            entry = {"name": node.name, "type": node.type_name, "status": self.status[i]}
            error = self.errors[i]
            if error is not None:
                entry["error"] = error
            nodes.append(entry)
        return self.trace.report(PLAN_ERROR if self.failure else PLAN_COMPLETE, nodes)

    def implicit_failed(self, writes: str, message: str) -> WorkflowFailed:
        """The implicit node that writes `writes` failed as its effect was
        applied (a `response` value that cannot be encoded): it ends
        NODE_ERROR with a `fail` event, like any node's failure (Kong's
        report lists `response` among the nodes)."""
        message = self.redactor().text(message)
        for i, node in enumerate(self.plan.nodes):
            if node.implicit and node.writes == writes:
                self.status[i] = NODE_ERROR
                self.errors[i] = message
                self.node_end[i] = time.perf_counter()
                self._trace(i, "fail", {}, error=message)
                return WorkflowFailed(None, node.name, node.type_name, message)
        return WorkflowFailed(None, writes, writes, message)

    def _replace_response_by_trace(self) -> None:
        """The report replaces the response body, so the `response` node
        cannot take full effect: Kong reports it NODE_SKIPPED."""
        if self._replaced_by_trace:
            return
        self._replaced_by_trace = True
        for i, node in enumerate(self.plan.nodes):
            if node.implicit and node.writes == "response" and self.status[i] == NODE_COMPLETE:
                self.status[i] = NODE_SKIPPED
                self._trace(i, "skip")

    # -- tracing -----------------------------------------------------------

    def _trace(
        self,
        i: int,
        action: str,
        values: Mapping[str, Any] | None = None,
        *,
        outputs: bool = True,
        duration: float | None = None,
        error: str | None = None,
    ) -> None:
        """Record an event of node `i` (tracing runs only): `values` are its
        inputs (`outputs` False) or outputs, typed by its ports."""
        trace = self.trace
        if trace is None:
            return
        node = self.plan.nodes[i]
        plan = self.plan
        types = sources = None
        secret: Container[str] = ()
        if values:
            ports = node.output_ports() if outputs else node.input_ports()
            types = {k: str(t) for k in values if (t := ports.type_of(k)) is not None}
            if outputs:
                secret = plan.secret_outputs[i]
            else:
                secret = plan.secret_inputs[i]
                sources = self._sources(i)
        trace.event(
            node.name, node.type_name, action, values, secret,
            types=types, sources=sources, phase=_PHASE_NAMES[plan.phase[i]], duration=duration, error=error,
        )

    def _trace_skip(self, j: int, branch: int, routing: Any) -> None:
        """Konnect Debugger "Actions": a `skip` shows "the routing value that
        caused the skip"; its `source` names the branch node that routed."""
        trace = self.trace
        assert trace is not None
        plan = self.plan
        node = plan.nodes[j]
        secret = (SELF,) if SELF in plan.secret_inputs[branch] else ()
        trace.event(
            node.name, node.type_name, "skip", {SELF: routing}, secret,
            types={SELF: json_type(routing)}, sources={SELF: plan.nodes[branch].name}, phase=_PHASE_NAMES[plan.phase[j]],
        )

    def _sources(self, i: int) -> dict[str, Any]:
        """Per input port of node `i`, the output it is connected to (Kong
        3.15.0.2: node source metadata, enough to redraw the graph); an
        input assembled key by key gives a mapping of key to output."""
        sources: dict[str, Any] = {}
        nodes = self.plan.nodes
        for c in self.plan.inputs[i]:
            port = None if c.src_port == SELF else c.src_port  # a node-wise output is labelled by its node
            label = ".".join(p for p in (nodes[c.src].name, port, c.src_key) if p is not None)
            if c.dst_port is None:
                for port in nodes[i].input_ports().named:
                    sources.setdefault(port, label)
            elif c.dst_key is not None:
                keyed = sources.setdefault(c.dst_port, {})
                if isinstance(keyed, dict):
                    keyed[c.dst_key] = label
            else:
                sources[c.dst_port] = label
        return sources

    def _resume(self, i: int) -> None:
        """An async node's work came back (Kong's `resume`, with its duration)."""
        dispatched = self.node_dispatched[i]
        if dispatched is not None:
            self._trace(i, "resume", duration=time.perf_counter() - dispatched)

    # -- scheduling --------------------------------------------------------

    def _start(self, i: int, ready: deque[int]) -> None:
        node = self.plan.nodes[i]
        try:
            inputs = self._gather(i)
            if self.trace is not None:
                self._trace(i, "run", inputs, outputs=False)
            self.status[i] = NODE_RUNNING
            self.node_start[i] = time.perf_counter()
            result = node.run(inputs, self)
        except Exception as e:  # noqa: BLE001
            self._fail(i, e)
        # most nodes are plain functions returning a dict: skip the (slower)
        # awaitable check for them
        if type(result) is not dict and inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            if self.trace is not None and node.traces_dispatch:
                # Kong: a second `run`, without values, when the work is dispatched
                self.node_dispatched[i] = time.perf_counter()
                self._trace(i, "run")
            if task.done():  # eager task factories finish plain coroutines at once
                self._resume(i)
                try:
                    self._complete(i, task.result(), ready)
                except Exception as e:
                    if self.status[i] == NODE_RUNNING:
                        self._fail(i, e)
                    raise
                return
            self._tasks[task] = i
            task.add_done_callback(self._task_done)
        else:
            self._complete(i, result, ready)

    def _complete(self, i: int, result: Outputs | None, ready: deque[int]) -> None:
        skip: frozenset[str] = frozenset()
        routing = None
        if isinstance(result, Skip):
            skip, routing = result.skip, result.routing
            result = result.outputs
        self.values[i] = result if result is not None else {}
        self.status[i] = NODE_COMPLETE
        self.node_end[i] = time.perf_counter()
        if self.trace is not None:
            self._trace(i, "complete", self.values[i])
        for name in skip:
            j = self.plan.by_name.get(name)
            if j is not None:
                self._skip(j, ready, (i, routing))
        phase = self.phase
        for d in self.plan.dependents[i]:
            self.remaining[d] -= 1
            if self.remaining[d] == 0 and self.status[d] == NODE_PENDING and self.plan.phase[d] <= phase:
                ready.append(d)

    def _skip(self, j: int, ready: deque[int], cause: tuple[int, Any]) -> None:
        """Skip node `j` and what depends on it alone; `cause` is the
        branch node that routed and its routing value."""
        if self.status[j] != NODE_PENDING:
            return
        self.status[j] = NODE_SKIPPED
        if self.trace is not None:
            self._trace_skip(j, *cause)
        for d in self.plan.dependents[j]:
            target = self.plan.nodes[d]
            if target.partial_inputs and j not in self.plan.gated_by[d]:
                # sinks take what arrives; a skipped source just sends nothing
                self.remaining[d] -= 1
                if self.remaining[d] == 0 and self.status[d] == NODE_PENDING and self.plan.phase[d] <= self.phase:
                    ready.append(d)
            else:
                self._skip(d, ready, cause)

    def _fail(self, i: int, error: BaseException) -> None:
        node = self.plan.nodes[i]
        if isinstance(error, NodeError):
            message = str(error)
        else:
            message = f"{type(error).__name__}: {error}"
            logger.error("Datakit: node %r crashed", node.name, exc_info=error)
        message = self.redactor().text(message)
        self.errors[i] = message
        # Kong: `{type: error, value}` and what the node did output (a
        # call's status, headers and body of a non-2xx answer)
        partial = getattr(error, "outputs", None)
        self.status[i] = NODE_ERROR
        self.node_end[i] = time.perf_counter()
        if self.trace is not None:
            self._trace(i, "fail", partial if isinstance(partial, Mapping) else {}, error=message)
        for task, j in self._tasks.items():
            task.cancel()
            self._cancelled.append(task)
            self._set(j, NODE_CANCELED, "cancel")
        self._tasks.clear()
        for j, status in enumerate(self.status):
            if status in (NODE_PENDING, NODE_RUNNING):
                # Kong: pending nodes get a `cancel` event too, without a duration
                self._set(j, NODE_CANCELED, "cancel")
        # implicit nodes (response, service_request) have no position in `nodes`
        self.failure = WorkflowFailed(node.index if node.declared else None, node.name, node.type_name, message)
        raise self.failure

    def _set(self, i: int, status: str, action: str) -> None:
        """Node `i` ends with `status` (cancelled); a running node's event
        carries how long it ran, as Kong's `cancel` does."""
        was_running = self.status[i] == NODE_RUNNING
        self.status[i] = status
        now = time.perf_counter()
        started = self.node_start[i]
        self.node_end[i] = now if was_running else None
        if self.trace is not None:
            self._trace(i, action, duration=now - started if was_running and started is not None else None)

    # -- input resolution --------------------------------------------------

    def _source(self, src: int, port: str | None, key: str | None) -> Any:
        out = self.values[src]
        if out is None:
            return None
        if port is None:
            value = out[SELF] if SELF in out else {k: v for k, v in out.items() if k != SELF}
        else:
            value = out.get(port)
        if key is not None:
            if isinstance(value, Mapping):
                found = value.get(key)
                if found is None and key.lower() != key:
                    found = value.get(key.lower())
                value = found
            else:
                value = None
        return value

    def _gather(self, i: int) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        node = self.plan.nodes[i]
        status, values = self.status, self.values
        for c in self.plan.inputs[i]:
            if status[c.src] != NODE_COMPLETE:
                continue  # a skipped source of a sink
            out = values[c.src]
            if c.src_port is None and c.src_key is None and out is not None and SELF in out:
                value = out[SELF]  # a node's single output (most connections; no call on the per-flow path)
            else:
                value = self._source(c.src, c.src_port, c.src_key)
            if c.dst_port is None:
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    raise NodeError(f"node-wise input from {self.plan.nodes[c.src].name!r} must be an object with keys for the inputs of {node.name!r}, got {json_type(value)}")
                ports = node.input_ports()
                for k, v in value.items():
                    t = ports.named.get(k)
                    if t is not None:
                        inputs[k] = _checked(node.name, k, t, v)
            elif c.dst_key is not None:
                inputs.setdefault(c.dst_port, {})[c.dst_key] = value
            else:
                if c.dst_type is not PortType.ANY and value is not None:
                    value = _checked(node.name, c.dst_port, c.dst_type, value)
                inputs[c.dst_port] = value
        return inputs


_PHASE_NAMES = {Phase.REQUEST: "access", Phase.RESPONSE: "response"}  # Kong's plugin phases


def _checked(node: str, port: str, expected: PortType, value: Any) -> Any:
    """The value for a typed input: as is, converted (number <-> string), or a node error."""
    try:
        return expected.coerce(value)
    except ValueError as e:
        detail = f" ({e})" if isinstance(value, str) else ""
        raise NodeError(f"input {port!r} of node {node!r} expects a {expected}, got {json_type(value)}{detail}") from None
