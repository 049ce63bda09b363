"""What an offline run produced, for assertions and for `datakit run`'s JSON:
`RunResult` and the `Message` view of its requests and responses."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from ..codecs import decode_body, decode_headers, decode_query, is_json_type
from ..scrub import scrub_message

if TYPE_CHECKING:
    from ..runtime import FlowRun

__all__ = ["Message", "RunResult", "message_json"]


def _body_json(message: http.Message) -> dict[str, Any]:
    """`body` as Datakit decodes it (JSON for JSON content types, else text);
    bodies that are not UTF-8 text as `body_base64`."""
    content = message.get_content(strict=False) or b""
    content_type = message.headers.get("content-type")
    if is_json_type(content_type):
        try:
            return {"body": json.loads(content)}
        except ValueError:
            pass
    if not content:
        return {"body": None}
    try:
        return {"body": content.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(content).decode("ascii")}


def message_json(message: http.Message) -> dict[str, Any]:
    """A request as `{method, url, http_version, headers, body}` or a
    response as `{status, headers, body}` (headers as a Datakit header map:
    lowercase names, repeated headers as lists)."""
    headers = decode_headers(message.headers.items(multi=True))
    if isinstance(message, http.Request):
        return {
            "method": message.method,
            "url": message.url,
            "http_version": message.http_version,
            "headers": headers,
            **_body_json(message),
        }
    assert isinstance(message, http.Response)
    return {"status": message.status_code, "headers": headers, **_body_json(message)}


class Message[M: http.Message]:
    """A read-only view of a request or response for assertions (`method`,
    `url`, `path` and `query` are a request's, `status` a response's).

    `headers` is mitmproxy's case-insensitive `Headers` (`h["Content-Type"]`,
    `h.get_all("x-multi")`); `content` the bytes; `text` the decoded text;
    `json()` the parsed JSON body; `body` the value as a Datakit node sees it
    (JSON for JSON content types, else text, None when empty)."""

    def __init__(self, message: M) -> None:
        self.message = message

    @property
    def headers(self) -> http.Headers:
        return self.message.headers

    @property
    def content(self) -> bytes:
        return self.message.get_content(strict=False) or b""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def body(self) -> Any:
        return decode_body(self.content, self.headers.get("content-type"))

    def to_dict(self) -> dict[str, Any]:
        return message_json(self.message)

    # requests
    @property
    def method(self: Message[http.Request]) -> str:
        return self.message.method

    @property
    def url(self: Message[http.Request]) -> str:
        return self.message.url

    @property
    def path(self: Message[http.Request]) -> str:
        """The path without the query."""
        return self.message.path.split("?", 1)[0]

    @property
    def query(self: Message[http.Request]) -> dict[str, Any]:
        """The decoded query (Datakit's query map: repeated keys as lists)."""
        path = self.message.path
        return decode_query(path.split("?", 1)[1] if "?" in path else "")

    # responses
    @property
    def status(self: Message[http.Response]) -> int:
        return self.message.status_code

    status_code = status

    def __repr__(self) -> str:
        message = self.message
        if isinstance(message, http.Request):
            return f"<request {message.method} {message.url}>"
        assert isinstance(message, http.Response)
        return f"<response {message.status_code} {len(self.content)} bytes>"


@dataclass
class RunResult:
    """What one offline run produced.

    - `workflow`: the name of the workflow that ran (None: no workflow's
      `match` accepted the request; the flow passes through unchanged).
    - `service_request`: the request as it goes (or would go) upstream;
      None when the workflow answered before proxying (exit or failure).
    - `response`: the client's response; None when the request would be
      proxied and no service response or upstream was given.
    - `exited`: an `exit` node answered. `failed`: a node failed (the client
      got the 500 error answer); `error`, `failed_node` say which and why.
    - `trace`: the trace report (when tracing ran), as README.md#debugging describes.
    - `flow`: the mitmproxy HTTPFlow itself.
    """

    flow: http.HTTPFlow
    workflow: str | None = None
    service_request: Message[http.Request] | None = None
    response: Message[http.Response] | None = None
    exited: bool = False
    failed: bool = False
    error: str | None = None
    failed_node: str | None = None
    trace: dict[str, Any] | None = None
    run: FlowRun | None = field(default=None, repr=False)

    @property
    def outcome(self) -> str:
        """`failed`, `exit`, `response` (the upstream's, after the response
        phase), `service_request` (would be proxied) or `no_workflow`."""
        if self.failed:
            return "failed"
        if self.exited:
            return "exit"
        if self.workflow is None and self.response is None:
            return "no_workflow"
        if self.response is not None:
            return "response"
        return "service_request"

    def to_dict(self, trace: bool = False, *, redact: bool = False) -> dict[str, Any]:
        """The JSON `datakit run` prints. `redact`: the fields a workflow
        wrote from a secret, and every string this run derived from one,
        show as `[REDACTED]` (the result's own messages stay real)."""
        out: dict[str, Any] = {"workflow": self.workflow, "outcome": self.outcome}
        if self.failed:
            out["error"] = {"node": self.failed_node, "message": self.error}
        if self.response is not None:
            out["response"] = self._shown(self.response, redact)
        elif self.service_request is not None:
            out["service_request"] = self._shown(self.service_request, redact)
        if trace:
            out["trace"] = self.trace
        run = self.run
        if redact and run is not None and (run.workflow.secrets or run.plan.secret_request_writes):
            out = run.redactor().value(out)
        return out

    def _shown(self, message: Message[http.Request] | Message[http.Response], redact: bool) -> dict[str, Any]:
        run = self.run
        if not redact or run is None:
            return message.to_dict()
        plan = run.plan
        is_request = isinstance(message.message, http.Request)
        writes = plan.secret_request_writes if is_request else plan.secret_response_writes
        if not writes or (not is_request and (self.failed or run.trace_to_client)):
            return message.to_dict()  # a failure's or trace's body is Datakit's own, already redacted
        copy = message.message.copy()
        scrub_message(copy, run, writes)
        return message_json(copy)
