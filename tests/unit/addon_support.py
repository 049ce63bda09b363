"""Shared helpers for the in-process addon tests: real mitmproxy flows and
the Datakit addon inside mitmproxy's test context, the test playing the
upstream. The `dk` fixture is in tests/unit/conftest.py."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from mitmdatakit.addon import Datakit


def make_flow(
    path: str = "/path",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    host: str = "api.test",
    port: int = 80,
    scheme: str = "http",
) -> http.HTTPFlow:
    fields = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if body:
        fields.append((b"content-length", str(len(body)).encode()))
    req = tutils.treq(
        method=method.encode(),
        path=path.encode(),
        host=host,
        port=port,
        scheme=scheme.encode(),
        headers=http.Headers(fields),
        content=body,
    )
    return tflow.tflow(req=req)


def upstream_response(status: int = 200, json_body: Any = None, headers: dict[str, str] | None = None, content: bytes | None = None) -> http.Response:
    fields = [(b"header-response", b"svalue")]
    if json_body is not None:
        content = json.dumps(json_body).encode()
        fields.append((b"content-type", b"application/json"))
    content = content if content is not None else b"message"
    fields += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    fields.append((b"content-length", str(len(content)).encode()))
    return tutils.tresp(status_code=status, headers=http.Headers(fields), content=content)


class DK:
    """The addon in a mitmproxy test context, plus a fake upstream."""

    def __init__(self, tctx: taddons.context, addon: Datakit, tmp_path) -> None:
        self.tctx = tctx
        self.addon = addon
        self.tmp_path = tmp_path
        self.upstream_calls = 0

    def load(self, text: str, name: str = "wf.yaml", **options: Any) -> None:
        path = self.tmp_path / name
        path.write_text(textwrap.dedent(text))
        self.tctx.configure(self.addon, datakit_config=str(path), **options)
        assert self.addon.workflows, "the workflow did not load"

    async def request(self, flow: http.HTTPFlow) -> http.HTTPFlow:
        await self.addon.request(flow)
        return flow

    async def response(self, flow: http.HTTPFlow) -> http.HTTPFlow:
        """The response hook as mitmproxy calls it: looked up now, skipped
        when the addon has none (no run awaits a response)."""
        hook = self.addon.response
        if hook is not None:
            await hook(flow)
        return flow

    async def roundtrip(self, flow: http.HTTPFlow, upstream: http.Response | None = None) -> http.HTTPFlow:
        """request hook; the upstream answers unless a response is set; then
        the response hook (mitmproxy calls it for addon-set responses too)."""
        await self.addon.request(flow)
        if flow.response is None:
            self.upstream_calls += 1
            flow.response = upstream if upstream is not None else upstream_response()
        return await self.response(flow)


def active_runs(addon: Datakit) -> dict[str, Any]:
    """The addon's in-progress runs by flow id (kept by its engine)."""
    engine = getattr(addon, "engine", None)
    return engine.runs if engine is not None else addon.runs


def body_json(flow: http.HTTPFlow) -> Any:
    assert flow.response is not None
    return json.loads(flow.response.content)


def trace_of(flow: http.HTTPFlow) -> dict[str, Any]:
    return flow.metadata["datakit"]["trace"]


def node_status(report: dict[str, Any]) -> dict[str, str]:
    return {n["name"]: n["status"] for n in report["nodes"]}


def events(report: dict[str, Any], name: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
    return [e for e in report["events"] if (name is None or e["name"] == name) and (action is None or e["action"] == action)]
