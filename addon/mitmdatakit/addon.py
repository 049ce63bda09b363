"""The mitmproxy side: options, reloading, and the request/response hooks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http

from .codecs import TRANSFER_HEADERS, encode_body, encode_headers, header_lookup, write_message
from .config import load_path, workflow_files
from .errors import CodecError, ConfigError
from .nodes.base import Phase
from .runtime import FlowRun, Services, WorkflowFailed
from .workflow import Workflow

logger = logging.getLogger("mitmdatakit")

TRACE_HEADER = "x-datakit-debug-trace"
TRACE_OFF_VALUES = frozenset({"0", "false", "off"})
METADATA_KEY = "datakit"
RELOAD_INTERVAL = 1.0


def default_config_path() -> str:
    """The repository's `workflows/` next to `addon/`."""
    return str(Path(__file__).resolve().parents[2] / "workflows")


def trace_requested(flow: http.HTTPFlow) -> bool:
    value = flow.request.headers.get(TRACE_HEADER)
    return value is not None and value.strip().lower() not in TRACE_OFF_VALUES


def error_body(run: FlowRun, failure: WorkflowFailed) -> dict[str, Any]:
    if run.workflow.debug:
        return {
            "message": "node execution error",
            "request_id": run.request_id,
            "error": failure.message,
            "node": {"index": failure.index, "name": failure.name, "type": failure.node_type},
        }
    return {"message": "An unexpected error occurred", "request_id": run.request_id}


def json_response(status: int, body: Any) -> http.Response:
    return http.Response.make(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


class Datakit:
    """Runs Datakit workflows on the flows passing through mitmproxy."""

    def __init__(self, default_config: str | None = None) -> None:
        self.default_config = default_config or default_config_path()
        self.workflows: list[Workflow] = []
        self.services = Services(option=self._option)
        self.runs: dict[str, FlowRun] = {}
        self._is_running = False
        self._watched: dict[str, float] = {}
        self._watcher: asyncio.Task | None = None
        self._config_path: str | None = None

    # -- options and loading -----------------------------------------------

    def load(self, loader) -> None:
        loader.add_option(
            "datakit_config", str, self.default_config,
            "Datakit workflow file, or a directory of *.yaml, *.yml and *.json workflows (loaded in name order).",
        )
        loader.add_option(
            "datakit_debug", bool, False,
            "Enable Datakit tracing for every workflow, as if each had `debug: true`.",
        )

    def configure(self, updated: set[str]) -> None:
        if "datakit_config" in updated:
            self._config_path = ctx.options.datakit_config
            self.reload(initial=not self._is_running)

    def running(self) -> None:
        self._is_running = True
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for run in list(self.runs.values()):
            await run.cancel()
        self.runs.clear()
        await self._close(self.workflows)
        await self.services.aclose()

    def reload(self, initial: bool = False) -> bool:
        """Load the configured workflows; keep the old ones if that fails."""
        path = self._config_path or self.default_config
        try:
            workflows = load_path(path)
        except ConfigError as e:
            if initial:
                logger.error("Datakit: invalid workflow configuration: %s", e)
            else:
                logger.error("Datakit: reload failed, still serving the previous workflows: %s", e)
            self._snapshot(path)
            return False
        old, self.workflows = self.workflows, workflows
        self._snapshot(path)
        names = ", ".join(f"{w.name} ({len([n for n in w.plan.nodes if n.index >= 0])} nodes)" for w in workflows) or "none"
        logger.info("Datakit: loaded %d workflow(s) from %s: %s", len(workflows), path, names)
        if old:
            self._spawn(self._close(old))
        return True

    def _snapshot(self, path: str) -> None:
        """Remember the mtimes of what `path` names, to notice edits."""
        self._watched = {}
        self._watched[path] = _mtime(path)
        try:
            for f in workflow_files(path):
                self._watched[str(f)] = _mtime(f)
        except ConfigError:
            pass

    def _changed(self) -> bool:
        path = self._config_path or self.default_config
        current = {path: _mtime(path)}
        try:
            for f in workflow_files(path):
                current[str(f)] = _mtime(f)
        except ConfigError:
            pass
        return current != self._watched

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            try:
                if self._changed():
                    logger.info("Datakit: workflow files changed, reloading")
                    self.reload()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                logger.exception("Datakit: watching the workflow files failed")

    async def _close(self, workflows: Sequence[Workflow]) -> None:
        for wf in workflows:
            try:
                await wf.aclose()
            except Exception:  # noqa: BLE001
                logger.exception("Datakit: closing workflow %s failed", wf.name)

    def _spawn(self, coro) -> None:
        try:
            asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()

    def _option(self, name: str) -> Any:
        try:
            return ctx.options._options[name].current()
        except (KeyError, AttributeError):
            raise KeyError(name) from None

    # -- flows -------------------------------------------------------------

    def select(self, flow: http.HTTPFlow) -> Workflow | None:
        for wf in self.workflows:
            if wf.applies_to(flow):
                return wf
        return None

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.id in self.runs:
            return  # answered by another addon already, or a replay of ours
        wf = self.select(flow)
        if wf is None:
            return
        debug = wf.debug or ctx.options.datakit_debug
        run = FlowRun(wf, flow, self.services, tracing=debug)
        run.trace_to_client = debug and trace_requested(flow)
        self.runs[flow.id] = run
        try:
            await run.run_phase(Phase.REQUEST)
        except WorkflowFailed as failure:
            self._fail(run, failure)
            return
        except Exception as e:  # noqa: BLE001 - never let a bug take the proxy down
            self._crash(run, e)
            return
        if run.exit_response is not None:
            self._finish(run)

    async def response(self, flow: http.HTTPFlow) -> None:
        run = self.runs.get(flow.id)
        if run is None or getattr(run, "finished", False):
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

    async def error(self, flow: http.HTTPFlow) -> None:
        run = self.runs.pop(flow.id, None)
        if run is not None:
            await run.cancel()
            self._attach(run)

    # -- building the answer -------------------------------------------------

    def _exit_response(self, run: FlowRun) -> http.Response:
        ex = run.exit_response
        assert ex is not None
        headers = ex.headers or {}
        fields = [(k, v) for k, v in encode_headers(headers) if k.lower() not in TRANSFER_HEADERS]
        response = http.Response.make(ex.status, b"")
        for name, value in fields:
            response.headers.add(name, value)
        if "content-encoding" in response.headers and ex.body is not None and not isinstance(ex.body, (str, bytes)):
            del response.headers["content-encoding"]
        data, content_type = encode_body(ex.body, header_lookup(headers, "content-type"))
        if content_type is not None:
            response.headers["content-type"] = content_type
        response.content = data
        return response

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
            self._fail(run, WorkflowFailed(0, "response", "response", str(e)))
            return
        except Exception as e:  # noqa: BLE001
            self._crash(run, e)
            return
        self._done(run)

    def _fail(self, run: FlowRun, failure: WorkflowFailed) -> None:
        logger.error(
            "Datakit: workflow %s failed at node %r (%s, #%d) for %s %s [request_id %s]: %s",
            run.workflow.name, failure.name, failure.node_type, failure.index,
            run.flow.request.method, run.flow.request.pretty_url, run.request_id, failure.message,
        )
        run.failure = failure
        run.flow.response = json_response(500, error_body(run, failure))
        self._done(run)

    def _crash(self, run: FlowRun, error: Exception) -> None:
        logger.error("Datakit: internal error in workflow %s", run.workflow.name, exc_info=error)
        self._fail(run, WorkflowFailed(0, "?", "?", f"internal error: {type(error).__name__}: {error}"))

    def _done(self, run: FlowRun) -> None:
        run.finished = True
        self.runs.pop(run.flow.id, None)
        self._attach(run)
        if run.trace is not None and getattr(run, "trace_to_client", False) and run.flow.response is not None:
            report = run.report()
            response = run.flow.response
            response.headers.pop("content-encoding", None)
            response.headers["content-type"] = "application/json"
            response.content = json.dumps(report).encode()

    def _attach(self, run: FlowRun) -> None:
        """Keep the trace on the flow (mitmweb, saved flows)."""
        if run.trace is None:
            return
        report = run.report()
        run.flow.metadata[METADATA_KEY] = {"workflow": run.workflow.name, "trace": report}
        summary = f"datakit: {run.workflow.name} {report['status']} in {report['duration'] * 1000:.1f} ms"
        if not run.flow.comment:
            run.flow.comment = summary


def _mtime(path: str | os.PathLike[str]) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1.0


__all__ = ["Datakit", "exceptions"]
