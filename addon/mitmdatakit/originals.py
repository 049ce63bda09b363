"""What the client sent and what the upstream answered, before a workflow
changed them, kept on the flow for `datakit replay`.

mitmproxy records a flow as it ends: its request is the service request
(the workflow rewrote it in place) and its response the client response.
Replaying a recorded flow through changed workflows needs the two inputs
instead, so the engine keeps them in `flow.metadata["datakit_originals"]`
(saved with `-w`), only for flows a workflow ran on; other flows are their
own record. The state shares the body bytes with the live message until a
workflow replaces them, so keeping it copies no body.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http

METADATA_KEY = "datakit_originals"


def keep_client_request(flow: http.HTTPFlow) -> None:
    flow.metadata[METADATA_KEY] = {"request": flow.request.get_state()}


# "service_response" of a flow whose workflow left the upstream's response
# as it was: the recorded response is the upstream's (no copy kept)
AS_RECORDED = "as recorded"


def keep_upstream_response(flow: http.HTTPFlow, *, unchanged: bool = False) -> None:
    """Keep the upstream's response; `unchanged`: the workflow will not
    change it (no response phase, no writes, no trace to the client), so
    the recorded response will be this one and no copy is made."""
    kept = flow.metadata.get(METADATA_KEY)
    if not isinstance(kept, dict):
        return
    if unchanged:  # (said before the upstream answered, too)
        kept["service_response"] = AS_RECORDED
    elif flow.response is not None:
        kept["service_response"] = flow.response.get_state()


def _state(flow: http.HTTPFlow, key: str) -> dict[str, Any] | None:
    kept = flow.metadata.get(METADATA_KEY)
    state = kept.get(key) if isinstance(kept, dict) else None
    return dict(state) if isinstance(state, dict) else None


# what mitmproxy's message states hold; its from_state checks none of it,
# and a flow file is anyone's to write
_OPTIONAL_NUMBER = (int, float, type(None))
_MESSAGE_FIELDS: dict[str, Any] = {
    "http_version": bytes, "content": (bytes, type(None)), "timestamp_start": _OPTIONAL_NUMBER, "timestamp_end": _OPTIONAL_NUMBER,
}
_REQUEST_FIELDS = {**_MESSAGE_FIELDS, "host": str, "port": int, "method": bytes, "scheme": bytes, "authority": bytes, "path": bytes}
_RESPONSE_FIELDS = {**_MESSAGE_FIELDS, "status_code": int, "reason": bytes}


def _headers_ok(fields: Any) -> bool:
    return isinstance(fields, (list, tuple)) and all(
        isinstance(f, (list, tuple)) and len(f) == 2 and all(isinstance(b, bytes) for b in f) for f in fields
    )


def _checked(cls: type[http.Message], state: dict[str, Any], what: str) -> dict[str, Any]:
    """`state`, once checked to have the fields and types of a `cls`'s
    state; ValueError naming the first bad field otherwise."""
    expected = _REQUEST_FIELDS if cls is http.Request else _RESPONSE_FIELDS
    for name, types in expected.items():
        if name not in state:
            raise ValueError(f"the {what} has no {name!r}")
        if not isinstance(state[name], types) or isinstance(state[name], bool):
            raise ValueError(f"the {what}'s {name!r} is a {type(state[name]).__name__}")
    if not _headers_ok(state.get("headers")) or not (state.get("trailers") is None or _headers_ok(state["trailers"])):
        raise ValueError(f"the {what}'s headers are not a list of [name, value] byte pairs")
    number, low, high = ("port", 0, 65535) if cls is http.Request else ("status_code", 100, 999)
    if not low <= state[number] <= high:
        raise ValueError(f"the {what}'s {number!r} is out of range")
    extra = set(state) - set(expected) - {"headers", "trailers"}
    if extra:
        raise ValueError(f"the {what} has an unknown field {sorted(extra)[0]!r}")
    return state


def kept(flow: http.HTTPFlow) -> bool:
    """Whether a workflow ran on the recorded flow (and kept its inputs)."""
    return isinstance(flow.metadata.get(METADATA_KEY), dict)


def client_request(flow: http.HTTPFlow) -> http.Request:
    """The request as the client sent it. ValueError when the flow (loaded
    from a file) holds no valid request."""
    state = _state(flow, "request")
    checked = _checked(http.Request, state, "kept client request") if state is not None else (
        _checked(http.Request, flow.request.get_state(), "request"))
    request: http.Request = http.Request.from_state(checked)
    return request


def upstream_response(flow: http.HTTPFlow) -> http.Response | None:
    """The upstream's response before the workflow's response phase; None
    when the upstream was never asked (an exit or a failure answered).
    ValueError as for `client_request`."""
    if not kept(flow) or flow.metadata[METADATA_KEY].get("service_response") == AS_RECORDED:
        return http.Response.from_state(_checked(http.Response, flow.response.get_state(), "response")) if flow.response is not None else None
    state = _state(flow, "service_response")
    return http.Response.from_state(_checked(http.Response, state, "kept upstream response")) if state is not None else None
