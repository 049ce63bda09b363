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


def kept(flow: http.HTTPFlow) -> bool:
    """Whether a workflow ran on the recorded flow (and kept its inputs)."""
    return isinstance(flow.metadata.get(METADATA_KEY), dict)


def client_request(flow: http.HTTPFlow) -> http.Request:
    """The request as the client sent it."""
    state = _state(flow, "request")
    return http.Request.from_state(state) if state is not None else flow.request.copy()


def upstream_response(flow: http.HTTPFlow) -> http.Response | None:
    """The upstream's response before the workflow's response phase; None
    when the upstream was never asked (an exit or a failure answered)."""
    if not kept(flow):
        return flow.response.copy() if flow.response is not None else None
    if flow.metadata[METADATA_KEY].get("service_response") == AS_RECORDED:
        return flow.response.copy() if flow.response is not None else None
    state = _state(flow, "service_response")
    return http.Response.from_state(state) if state is not None else None
