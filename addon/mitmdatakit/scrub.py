"""Scrubbing secret-derived values a workflow wrote out of the recorded flow.

mitmproxy records a flow in addons that run after the scripts: the Save
addon (`-w`) and mitmdump's flow log line (dumper) act in the `response`
and `error` hooks, after Datakit's. When Datakit's own hook ends, the
request has been sent upstream (or never will be: Datakit answered), so
the request fields a workflow wrote from a secret can be replaced by
`[REDACTED]` in the record without changing the traffic.

The response is recorded in the same hook chain that precedes sending it,
so its scrub is a pair: `scrub_response` replaces the fields and keeps the
real values in a `ScrubbedResponse`, which the restorer addon (restore.py),
last in mitmproxy's chain, puts back just before mitmproxy sends the
response and takes out again once it is sent.

Which fields: the inputs of message-writing nodes (`Node.writes`) fed from
a secret, found on the graph at load (taint.py). Client- and upstream-sent
values are left alone, except a literal vault value in a header or the URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mitmproxy.http import Headers, Request

from .trace import NODE_COMPLETE, REDACTED

if TYPE_CHECKING:
    from mitmproxy import http

    from .runtime import FlowRun
    from .taint import SecretWrite

REDACTED_BYTES = REDACTED.encode()


def scrub_message(message: http.Message, run: FlowRun, writes: Sequence[SecretWrite], body: bool = True) -> int:
    """Replace what `writes` put into `message` from a secret (the body
    only with `body`); how many fields were replaced."""
    count = 0
    for w in writes:
        if run.status[w.node] != NODE_COMPLETE:
            continue  # never ran: wrote nothing
        inputs = run.inputs_of(w.node)
        for port, keys in w.ports.items():
            value = inputs.get(port)
            if value is None:
                continue
            if port == "body":
                if body and message.raw_content:
                    message.content = REDACTED_BYTES
                    count += 1
            elif port == "headers" and isinstance(value, Mapping):
                count += _scrub_headers(message, _names(value, keys))
            elif port == "query" and isinstance(value, Mapping) and isinstance(message, Request):  # a request's only
                count += _scrub_query(message, _names(value, keys))
    return count


def request_has_secrets(run: FlowRun) -> bool:
    """Whether the run's request may carry secrets to scrub once it is sent:
    values derived from a vault output, or the workflow's literal secrets."""
    return bool(run.plan.secret_request_writes or run.workflow.secrets)


def scrub_request(run: FlowRun) -> int:
    """Scrub the run's recorded request; 0 at once for an untainted plan."""
    if not request_has_secrets(run):
        return 0
    plan = run.plan
    request = run.flow.request
    count = scrub_message(request, run, plan.secret_request_writes)
    count += _scrub_literal_secrets(request, run)
    return count


Fields = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class ScrubbedResponse:
    """A scrubbed response's header fields and body, real and recorded, to
    swap one for the other. Content-Length goes with the body."""

    fields: tuple[Fields, Fields]  # (real, recorded)
    body: tuple[bytes | None, bytes | None] | None = None  # (real, recorded) raw content; None: unchanged

    def restore(self, response: http.Response) -> list[str]:
        """Put the real values back where the recorded ones still are; the
        fields found holding neither (another addon changed them)."""
        return self._swap(response, to_real=True)

    def rescrub(self, response: http.Response) -> None:
        """The response went out: the recorded values again, where the real
        ones still are."""
        self._swap(response, to_real=False)

    def _swap(self, response: http.Response, to_real: bool) -> list[str]:
        def pick[T](pair: tuple[T, T]) -> tuple[T, T]:
            real, recorded = pair
            return (recorded, real) if to_real else (real, recorded)

        old_fields, new_fields = pick(self.fields)
        old_body, new_body = pick(self.body) if self.body is not None else (None, None)
        if response.headers.fields == old_fields and (self.body is None or response.raw_content == old_body):
            # nobody touched it in between (the usual case): swap it all
            response.headers.fields = new_fields
            if self.body is not None:
                response.raw_content = new_body
            return []
        return self._swap_each(response, old_fields, new_fields, old_body, new_body)

    def _swap_each(self, response: http.Response, old_fields: Fields, new_fields: Fields,
                   old_body: bytes | None, new_body: bytes | None) -> list[str]:
        """Another addon changed the response: swap what is still ours."""
        unexpected: list[str] = []
        headers, old, new = response.headers, Headers(old_fields), Headers(new_fields)
        for name in {k.lower() for k in old} | {k.lower() for k in new}:
            if name == "content-length" or old.get_all(name) == new.get_all(name):
                continue
            current = headers.get_all(name)
            if current == old.get_all(name):
                headers.set_all(name, new.get_all(name))
            elif current != new.get_all(name):
                unexpected.append(f"header {name!r}")
        if self.body is not None:
            current_body = response.raw_content
            if current_body == old_body:
                response.raw_content = new_body
                if headers.get_all("content-length") == old.get_all("content-length"):
                    headers.set_all("content-length", new.get_all("content-length"))
            elif current_body != new_body:
                unexpected.append("body")
        return unexpected


def scrub_response(run: FlowRun, body: bool = True) -> ScrubbedResponse | None:
    """Scrub the response the run built (exit, `response` node) and return
    what it replaced; None (at once for an untainted plan) when nothing was.
    `body=False` leaves the body alone (a trace report replaced it)."""
    plan = run.plan
    if not plan.secret_response_writes and not run.workflow.secrets:
        return None
    response = run.flow.response
    if response is None:
        return None
    real_fields, real_raw = response.headers.fields, response.raw_content
    try:
        scrub_message(response, run, plan.secret_response_writes, body=body)
        _scrub_literal_headers(response, run)
    except BaseException:
        response.headers.fields, response.raw_content = real_fields, real_raw  # never half-scrubbed
        raise
    fields, raw = response.headers.fields, response.raw_content
    if fields == real_fields and raw == real_raw:
        return None
    return ScrubbedResponse((real_fields, fields), None if raw == real_raw else (real_raw, raw))


def _names(value: Mapping[str, Any], keys: frozenset[str] | None) -> set[str]:
    names = {str(k).lower() for k in value}
    return names if keys is None else names & keys


def _scrub_headers(message: http.Message, names: set[str]) -> int:
    count = 0
    for name in names:
        if name in message.headers:
            message.headers.set_all(name, [REDACTED] * len(message.headers.get_all(name)))
            count += 1
    return count


def _scrub_query(request: http.Request, names: set[str]) -> int:
    path, sep, query = request.path.partition("?")
    if not sep or not names:
        return 0
    count = 0
    parts = query.split("&")
    for n, part in enumerate(parts):
        key, has_value, _ = part.partition("=")
        if has_value and unquote(key.replace("+", " ")).lower() in names:
            parts[n] = f"{key}={REDACTED}"
            count += 1
    if count:
        request.path = f"{path}?{'&'.join(parts)}"
    return count


def _scrub_literal_headers(message: http.Message, run: FlowRun) -> int:
    """The vault values themselves, wherever a header holds them (written
    outside the graph, e.g. through `kong.ctx`, or echoed by the upstream)."""
    redactor = run.workflow.redactor
    if not redactor:
        return 0
    count = 0
    for name in {k.lower() for k in message.headers}:
        values = message.headers.get_all(name)
        redacted = [redactor.text(v) for v in values]
        if redacted != values:
            message.headers.set_all(name, redacted)
            count += 1
    return count


def _scrub_literal_secrets(request: http.Request, run: FlowRun) -> int:
    """The vault values in the request's headers and URL."""
    redactor = run.workflow.redactor
    if not redactor:
        return 0
    count = _scrub_literal_headers(request, run)
    path = request.path
    if redactor.text(unquote(path)) != unquote(path):
        request.path = redactor.text(unquote(path))
        count += 1
    return count


__all__ = ["REDACTED", "ScrubbedResponse", "scrub_message", "scrub_request", "scrub_response"]
