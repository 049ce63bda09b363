"""pytest plugin: run Datakit workflows in your tests (registered as the
`datakit` pytest11 entry point, so installing mitmdatakit enables it).

Fixtures:

- `datakit`: a `DatakitRunner`. `datakit.run(WORKFLOW, METHOD, URL, ...)`
  runs the workflow once on that request, in process, with the real engine
  and real `call` nodes (so your test's local APIs are called), and returns
  a `RunResult`: `.response` (what the client gets: `.status`, `.headers`,
  `.json()`, `.text`, `.body`), `.service_request` (what goes upstream:
  `.method`, `.url`, `.path`, `.query`, `.headers`, `.json()`, `.text`),
  `.trace` (the trace report), `.failed` / `.error` / `.failed_node`,
  `.exited`, `.outcome`. In async tests use `await datakit.arun(...)`
  (mark them for one async plugin: `@pytest.mark.anyio`, or pytest-asyncio's
  `@pytest.mark.asyncio`). `datakit.replay(FLOWFILE, workflows=...)` /
  `datakit.assert_replay_unchanged(...)`: recorded traffic (`mitmdump -w`)
  replayed as `datakit replay` does.
- `datakit_mock_api`: a factory of local HTTP APIs (`MockAPI`) to stand in
  for upstreams and third-party services; all are stopped after the test.

    def test_adds_a_token(datakit, datakit_mock_api):
        tokens = datakit_mock_api().route("POST", "/token", json={"access_token": "t0k"})
        upstream = datakit_mock_api()        # unrouted requests: an echo
        result = datakit.run(
            WORKFLOW, "GET", "http://api.test/orders",
            headers={"x-user": "ada"},
            upstream=upstream.url,           # really proxy to it (optional)
        )
        assert result.service_request.headers["authorization"] == "Bearer t0k"
        assert result.response.status == 200

WORKFLOW is a path (file or directory), YAML/JSON text, a mapping, or what
`datakit.load()` returned. Without `upstream` or `service_response`, a
request that is not answered by the workflow stops at the service request
(`.response` is None).
"""

from __future__ import annotations

import asyncio
import json as _json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Unpack

import pytest

if TYPE_CHECKING:
    from mitmproxy import http

    from .mock_api import MockAPI
    from .offline import OfflineRunner, RunResult, WorkflowSource
    from .offline.replay import ReplayReport
    from .workflow import Workflow

__all__ = ["DatakitRunner", "datakit", "datakit_mock_api"]

_UNSET = object()

type HeaderSpec = Mapping[str, Any] | Sequence[Sequence[str]]
"""Request headers: a mapping (a list value repeats a header) or [name, value] pairs."""


class HasURL(Protocol):
    """A server object given as `upstream=` (MockAPI, the tests' servers)."""

    @property
    def url(self) -> str: ...


class RunOptions(TypedDict, total=False):
    """The keyword arguments of `DatakitRunner.run` (see there)."""

    headers: HeaderSpec | None
    body: Any  # str/bytes as is, any other value JSON-encoded
    json: Any
    query: Mapping[str, Any] | None
    http_version: str
    client_ip: str
    flow: http.HTTPFlow | None
    upstream: str | bool | HasURL | None
    service_response: Mapping[str, Any] | http.Response | None
    trace: bool
    debug: bool


class ReplayOptions(TypedDict, total=False):
    """The keyword arguments of `DatakitRunner.replay` besides `workflows`."""

    ignore_headers: Iterable[str]
    debug: bool


class DatakitRunner:
    """Runs workflows on requests, on a private event loop in a background
    thread (so sync tests can call `run` and async tests `await arun`,
    while a local API on the test's own loop can still answer)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: OfflineRunner | None = None
        self._loaded: list[Workflow] = []
        self._lock = threading.Lock()

    # -- workflows ---------------------------------------------------------------

    def load(self, workflow: WorkflowSource, *, name: str = "workflow") -> list[Workflow]:
        """Load a workflow (path, YAML/JSON text, mapping) with the addon's
        loader; raises `mitmdatakit.errors.ConfigError` when it is invalid.
        Pass the result to `run` to reuse it (its memory cache and pooled
        connections then persist across runs)."""
        from .offline import load_workflows

        workflows = load_workflows(workflow, name=name)
        self._loaded.extend(workflows)
        return workflows

    def _workflows(self, workflow: WorkflowSource) -> list[Workflow]:
        from .workflow import Workflow

        if isinstance(workflow, Workflow):
            return [workflow]
        if isinstance(workflow, list):
            loaded = [w for w in workflow if isinstance(w, Workflow)]
            if len(loaded) == len(workflow):  # loaded already
                return loaded
        return self.load(workflow)

    def _offline_runner(self) -> OfflineRunner:
        runner = self._runner
        assert runner is not None, "made with the loop (_ensure_loop) the runs are scheduled on"
        return runner

    # -- running -----------------------------------------------------------------

    def run(
        self, workflow: WorkflowSource, method: str = "GET", url: str = "http://localhost/", **kwargs: Unpack[RunOptions],
    ) -> RunResult:
        """Run `workflow` on one request and wait for the result.

        Request: `method`, `url`, `headers` (mapping; a list value repeats a
        header), `body` (str/bytes as is; other values JSON-encoded),
        `json` (a JSON body), `query` (merged into the URL), `http_version`,
        `client_ip`; or `flow=` a ready `mitmproxy.http.HTTPFlow`.

        Then, when the workflow lets the request through: `upstream=URL`
        (or a server object with `.url`, or True for the request's own URL)
        really sends the service request there and runs the response phase
        on the answer; `service_response={status, headers, body}` (or a
        `mitmproxy.http.Response`) uses that answer instead.

        `trace` (default True) records `.trace` without changing anything
        the client gets; `debug=True` acts as mitmproxy's `datakit_debug`
        option (debug error bodies, and the `X-DataKit-Debug-Trace` request
        header answers with the trace report, as in the proxy).

        Use `await datakit.arun(...)` inside async tests."""
        self._refuse_in_loop("run", "arun")
        return asyncio.run_coroutine_threadsafe(self._run(workflow, method, url, **kwargs), self._ensure_loop()).result()

    async def arun(
        self, workflow: WorkflowSource, method: str = "GET", url: str = "http://localhost/", **kwargs: Unpack[RunOptions],
    ) -> RunResult:
        """`run` for async tests: awaits the run without blocking your loop."""
        future = asyncio.run_coroutine_threadsafe(self._run(workflow, method, url, **kwargs), self._ensure_loop())
        return await asyncio.wrap_future(future)

    async def _run(
        self,
        workflow: WorkflowSource,
        method: str,
        url: str,
        *,
        headers: HeaderSpec | None = None,
        body: Any = None,
        json: Any = _UNSET,
        query: Mapping[str, Any] | None = None,
        http_version: str = "HTTP/1.1",
        client_ip: str = "127.0.0.1",
        flow: http.HTTPFlow | None = None,
        upstream: str | bool | HasURL | None = None,
        service_response: Mapping[str, Any] | http.Response | None = None,
        trace: bool = True,
        debug: bool = False,
    ) -> RunResult:
        from mitmproxy import http

        from .offline import build_flow, build_response

        workflows = self._workflows(workflow)
        if flow is None:
            if json is not _UNSET:
                if body is not None:
                    raise ValueError("give `body` or `json`, not both")
                body = _json.dumps(json)
                if not _has_header(headers, "content-type"):
                    headers = _with_header(headers, "Content-Type", "application/json")
            flow = build_flow(method, url, headers, body, query=query, http_version=http_version, client_ip=client_ip)
        if isinstance(service_response, Mapping):
            service_response = build_response(service_response)
        elif service_response is not None and not isinstance(service_response, http.Response):
            raise TypeError("service_response must be a mapping {status, headers, body} or a mitmproxy.http.Response")
        target: str | bool | None
        if upstream is None or isinstance(upstream, (str, bool)):
            target = upstream
        else:  # a server object: its URL
            found = getattr(upstream, "url", upstream)
            target = found if found is None or isinstance(found, (str, bool)) else str(found)
        return await self._offline_runner().run(
            workflows, flow, service_response=service_response, upstream=target, trace=trace, debug=debug,
        )

    # -- replaying recorded traffic ----------------------------------------------

    def replay(
        self, flowfile: str | os.PathLike[str], *, workflows: WorkflowSource, ignore_headers: Iterable[str] = (), debug: bool = False,
    ) -> ReplayReport:
        """Replay every HTTP flow of a mitmproxy flow file (`mitmdump -w`)
        through `workflows`, as `datakit replay` does; returns a
        `ReplayReport`: `.flows` (each with `.outcome`, `.changed`, `.diff`),
        `.changed`, `.ok`, `.assert_unchanged()`. In async tests use
        `await datakit.areplay(...)`."""
        self._refuse_in_loop("replay", "areplay")
        coro = self._replay(flowfile, workflows, ignore_headers, debug)
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result()

    async def areplay(
        self, flowfile: str | os.PathLike[str], *, workflows: WorkflowSource, ignore_headers: Iterable[str] = (), debug: bool = False,
    ) -> ReplayReport:
        """`replay` for async tests."""
        future = asyncio.run_coroutine_threadsafe(self._replay(flowfile, workflows, ignore_headers, debug), self._ensure_loop())
        return await asyncio.wrap_future(future)

    def assert_replay_unchanged(
        self, flowfile: str | os.PathLike[str], *, workflows: WorkflowSource, **kwargs: Unpack[ReplayOptions],
    ) -> ReplayReport:
        """`replay`, then fail the test with the diff when any flow changed."""
        report = self.replay(flowfile, workflows=workflows, **kwargs)
        report.assert_unchanged()
        return report

    async def _replay(
        self, flowfile: str | os.PathLike[str], workflows: WorkflowSource, ignore_headers: Iterable[str], debug: bool,
    ) -> ReplayReport:
        from .offline.replay import read_flows, replay_flows

        flows = read_flows(flowfile)
        return await replay_flows(
            self._workflows(workflows), flows, self._offline_runner(), source=str(flowfile), ignore_headers=ignore_headers, debug=debug,
        )

    @staticmethod
    def _refuse_in_loop(name: str, instead: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise RuntimeError(f"datakit.{name}() blocks; inside an async test use `await datakit.{instead}(...)`")

    # -- the loop ------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                from .offline import OfflineRunner

                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="datakit-runner", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._runner = OfflineRunner()
            return self._loop

    def close(self) -> None:
        """Release connections and workflow resources; stop the loop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            from .offline import closing_workflows

            async with closing_workflows(self._loaded):
                await self._offline_runner().aclose()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> DatakitRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_header(headers: HeaderSpec | None, name: str) -> bool:
    if isinstance(headers, Mapping):
        return any(str(k).lower() == name for k in headers)
    return any(str(k).lower() == name for k, _ in headers or ())


def _with_header(headers: HeaderSpec | None, name: str, value: str) -> HeaderSpec:
    if headers is None:
        return {name: value}
    if isinstance(headers, Mapping):
        return {**headers, name: value}
    return [*headers, (name, value)]


class MockAPIFactory(Protocol):
    """What the `datakit_mock_api` fixture gives: makes and starts a `MockAPI`."""

    def __call__(self, port: int = 0, name: str = "mock-api") -> MockAPI: ...


@pytest.fixture
def datakit() -> Iterator[DatakitRunner]:
    """Run Datakit workflows on requests: `datakit.run(WORKFLOW, METHOD, URL, ...)`."""
    with DatakitRunner() as runner:
        yield runner


@pytest.fixture
def datakit_mock_api() -> Iterator[MockAPIFactory]:
    """Factory of local HTTP APIs on 127.0.0.1: `api = datakit_mock_api()`,
    then `api.route(METHOD, PATH, json=..., status=..., headers=..., delay=...)`,
    `api.url`, `api.requests`. Stopped after the test."""
    from .mock_api import MockAPI

    with ExitStack() as started:  # stops them in reverse order

        def make(port: int = 0, name: str = "mock-api") -> MockAPI:
            api: MockAPI = started.enter_context(MockAPI(port=port, name=name))
            return api

        yield make
