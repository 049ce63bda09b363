"""Scrubbing secret-derived values a workflow wrote out of the recorded flow.

mitmproxy records a flow in addons that run after the scripts: the Save
addon (`-w`) and mitmdump's flow log line (dumper) act in the `response`
and `error` hooks, after Datakit's. When Datakit's own hook ends, the
request has been sent upstream (or never will be: Datakit answered), so
the request fields a workflow wrote from a secret can be replaced by
`[REDACTED]` in the record without changing the traffic.

Which fields: the inputs of message-writing nodes (`Node.writes`) fed from
a secret, found on the graph at load (`taint.secret_writes`). Client-sent values are
left alone, except a literal vault value (the client cannot know it).

The response a workflow builds from a secret goes out as it is: mitmproxy
records it in the same hook, before sending it, so it cannot be scrubbed
from the record without scrubbing it from the wire; a load warning says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .trace import NODE_COMPLETE, REDACTED

if TYPE_CHECKING:
    from mitmproxy import http

    from .runtime import FlowRun
    from .taint import SecretWrite

REDACTED_BYTES = REDACTED.encode()


def scrub_message(message: http.Message, run: FlowRun, writes: Sequence[SecretWrite]) -> int:
    """Replace what `writes` put into `message` from a secret; how many
    fields were replaced."""
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
                if message.raw_content:
                    message.content = REDACTED_BYTES
                    count += 1
            elif port == "headers" and isinstance(value, Mapping):
                count += _scrub_headers(message, _names(value, keys))
            elif port == "query" and isinstance(value, Mapping):
                count += _scrub_query(message, _names(value, keys))
    return count


def scrub_request(run: FlowRun) -> int:
    """Scrub the run's recorded request; 0 at once for an untainted plan."""
    plan = run.plan
    if not plan.secret_request_writes and not run.workflow.secrets:
        return 0
    request = run.flow.request
    count = scrub_message(request, run, plan.secret_request_writes)
    count += _scrub_literal_secrets(request, run)
    return count


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


def _scrub_query(request: Any, names: set[str]) -> int:
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


def _scrub_literal_secrets(request: Any, run: FlowRun) -> int:
    """The vault values themselves, wherever a header or the URL holds them
    (written outside the graph, e.g. through `kong.ctx`)."""
    redactor = run.workflow.redactor
    if not redactor:
        return 0
    count = 0
    for name in {k.lower() for k in request.headers}:
        values = request.headers.get_all(name)
        redacted = [redactor.text(v) for v in values]
        if redacted != values:
            request.headers.set_all(name, redacted)
            count += 1
    path = request.path
    if redactor.text(unquote(path)) != unquote(path):
        request.path = redactor.text(unquote(path))
        count += 1
    return count


__all__ = ["REDACTED", "scrub_message", "scrub_request"]
