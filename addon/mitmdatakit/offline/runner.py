"""Running a flow through workflows without a proxy, as the addon would
inside mitmproxy: the request phase, then (when the request is to be
proxied) a given service response or a real upstream, and the response
phase."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager

from mitmproxy import http

from ..engine import METADATA_KEY, Engine
from ..errors import UpstreamError
from ..header_policy import is_hop_by_hop
from ..hosts import AmbiguousHost
from ..http_clients import UPSTREAM
from ..runtime import Services
from ..urls import default_port, http_url
from ..workflow import Workflow
from .messages import make_response
from .results import Message, RunResult

__all__ = ["DEFAULT_UPSTREAM_TIMEOUT", "OfflineRunner", "UpstreamError", "closing_workflows"]

logger = logging.getLogger("mitmdatakit")

DEFAULT_UPSTREAM_TIMEOUT = 30.0


class OfflineRunner:
    """Runs flows through workflows in the current event loop, as the addon
    would inside mitmproxy. One runner pools its HTTP connections (for
    `call` nodes and the upstream) in its `Services`; `aclose()`, or leaving
    `async with OfflineRunner() as runner:`, releases them."""

    def __init__(self, services: Services | None = None, *, upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT) -> None:
        self.services = services or Services()
        self.upstream_timeout = upstream_timeout

    async def run(
        self,
        workflows: Sequence[Workflow],
        flow: http.HTTPFlow,
        *,
        service_response: http.Response | None = None,
        upstream: str | bool | None = None,
        trace: bool = False,
        debug: bool = False,
    ) -> RunResult:
        """Run `flow` through the first workflow that applies to it.

        Then, if it is to be proxied: with `service_response` the response
        phase runs on that response; with `upstream` the service request is
        really sent (`True`: to the URL the request names; a URL: to that
        scheme, host and port, unless the workflow retargeted the request
        with `kong.service.target` / `.upstream` / `.request.scheme`) and
        the response phase runs on the upstream's answer.

        `debug`: as mitmproxy's `datakit_debug` option (tracing on for every
        workflow: debug error bodies, and the `X-DataKit-Debug-Trace` header
        answers with the report). `trace`: record the trace report without
        changing anything the client gets."""
        if service_response is not None and upstream not in (None, False):
            raise ValueError("give a service response or an upstream, not both")
        # the result's messages stay real (tests assert on them); `datakit
        # run` redacts what it prints (RunResult.to_dict(redact=True))
        engine = Engine(self.services, debug=lambda: debug, record_trace=trace, scrub_records=False)
        engine.workflows = list(workflows)
        request = flow.request
        target = (request.scheme, request.host, request.port)

        try:
            selected = engine.select(flow)
        except AmbiguousHost:  # engine.request answers it 400, as the proxy does
            selected = None
        result = RunResult(flow=flow, workflow=selected.name if selected is not None else None)
        try:
            result.run = await engine.request(flow)
            if flow.response is None:
                result.service_request = Message(flow.request.copy())
                response = service_response
                if upstream not in (None, False):
                    retargeted = (request.scheme, request.host, request.port) != target
                    response = await self._send_upstream(flow, None if (upstream is True or retargeted) else str(upstream))
                if response is not None:
                    flow.response = response
                    await engine.response(flow)
        finally:
            await engine.aclose()

        run = result.run
        if run is not None:
            result.failed = run.failure is not None
            if run.failure is not None:
                result.error = run.failure.message
                result.failed_node = run.failure.name
            result.exited = run.client_response.exit is not None and not result.failed
            meta = flow.metadata.get(METADATA_KEY)
            if isinstance(meta, Mapping):
                result.trace = meta.get("trace")
            elif run.trace is not None:
                result.trace = run.report()
        if flow.response is not None:
            result.response = Message(flow.response)
        return result

    # -- the real upstream -------------------------------------------------------

    async def _send_upstream(self, flow: http.HTTPFlow, base: str | None) -> http.Response:
        import aiohttp
        from yarl import URL

        req = flow.request
        if base is not None:
            parts = http_url(base)
            if parts is None or parts.hostname is None:
                raise ValueError(f"invalid upstream URL {base!r}")
            scheme, host = parts.scheme, parts.hostname
            port = default_port(parts)
        else:
            scheme, host, port = req.scheme, req.host, req.port
        shown_host = f"[{host}]" if ":" in host else host
        url = f"{scheme}://{shown_host}:{port}{req.path}"
        headers = [(k, v) for k, v in req.headers.items(multi=True) if not is_hop_by_hop(k)]
        content = req.get_content(strict=False) or b""
        data = content if (content or req.method not in ("GET", "HEAD", "DELETE", "OPTIONS")) else None
        try:
            async with self.services.clients.session(UPSTREAM).request(
                req.method,
                URL(url, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.upstream_timeout),
                ssl=scheme != "https",  # https: no certificate check; http: aiohttp's default (unused)
            ) as resp:
                raw = await resp.read()
                fields = list(resp.raw_headers)
                version = f"HTTP/{resp.version.major}.{resp.version.minor}" if resp.version else "HTTP/1.1"
                status, reason = resp.status, resp.reason or ""
        except (TimeoutError, aiohttp.ClientError) as e:
            raise UpstreamError(f"upstream {scheme}://{shown_host}:{port} failed: {type(e).__name__}: {e}") from None
        return make_response(status, reason.encode("latin-1", "replace"), fields, raw, version, raw=True)

    async def aclose(self) -> None:
        await self.services.aclose()

    async def __aenter__(self) -> OfflineRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def closing_workflows(workflows: Iterable[Workflow]) -> AsyncIterator[None]:
    """Close the workflows' resources (caches, pooled connections) on the way
    out; one failing to close does not keep the others open."""
    try:
        yield
    finally:
        for wf in workflows:
            try:
                await wf.aclose()
            except Exception:  # close the others anyway
                logger.exception("Datakit: closing workflow %s failed", wf.name)
