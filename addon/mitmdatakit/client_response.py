"""The client response object: every effect a run has on the response the
client gets, applied to the flow in one place.

An `exit` node answers (`exit`), the implicit `response` node patches the
headers and body (`patch`) and `kong.response.status` sets the status
(`status`). Nodes only record these through their context; `apply(flow)`
writes them when the response goes out, the exit's answer or the upstream's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mitmproxy import http

from .codecs import encode_body, encode_headers, header_lookup, write_message
from .header_policy import writable_headers

logger = logging.getLogger("mitmdatakit")


@dataclass
class ExitResponse:
    """What an exit node answers with, as its inputs gave it."""

    status: int
    headers: Mapping[str, Any] | None
    body: Any
    node: str


class ClientResponse:
    """The effects one run has on the client's response."""

    def __init__(self) -> None:
        self.exit: ExitResponse | None = None
        self.patch: dict[str, Any] = {}  # "headers" and/or "body" to write into the response
        self.status: int | None = None

    def answer(self, status: int, headers: Mapping[str, Any] | None, body: Any, node: str) -> None:
        """An exit node answers the client (the first exit wins)."""
        if self.exit is not None:
            logger.warning("Datakit: node %r: a response was already set by %r; ignored", node, self.exit.node)
            return
        self.exit = ExitResponse(status, headers, body, node)

    def set_patch(self, key: str, value: Any) -> None:
        """The `response` node's `headers` or `body` input."""
        self.patch[key] = value

    @property
    def changes_upstream_response(self) -> bool:
        """Whether the upstream's response would be changed (a patch or a status)."""
        return bool(self.patch) or self.status is not None

    def apply(self, flow: http.HTTPFlow) -> None:
        """Write the effects into the flow: the exit's answer replaces the
        response, then the patch and the status apply to whichever response
        goes out. Raises CodecError when a value cannot be encoded."""
        if self.exit is not None:
            flow.response = self.exit_message()
        if flow.response is not None:
            if self.patch:
                write_message(flow.response, self.patch.get("headers"), self.patch.get("body"), set_body="body" in self.patch, where="response")
            if self.status is not None:
                flow.response.status_code = self.status

    def exit_message(self) -> http.Response:
        """The exit's answer. The header list is built here and handed to
        `Response.make` once: editing a made Response header by header and
        then setting its content costs as much again as making it. The
        result is the same message, fields in the same order:
        Content-Length first, then the exit's headers."""
        ex = self.exit
        assert ex is not None
        headers = writable_headers(ex.headers or {}, ex.node)
        fields = encode_headers(headers)
        if ex.body is not None and not isinstance(ex.body, (str, bytes)):
            # a JSON body is not encoded: a Content-Encoding would lie
            fields = [(k, v) for k, v in fields if k.lower() != "content-encoding"]
        data, content_type = encode_body(ex.body, header_lookup(headers, "content-type"))
        if content_type is not None:
            fields = _set_field(fields, "content-type", content_type)
        raw = [(b"content-length", b"0")]  # set from the content by make()
        raw += [(k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in fields]
        # make() sets the content as `response.content = data` does: encoded
        # per Content-Encoding, Content-Length recomputed in place
        return http.Response.make(ex.status, data, raw)


def drop_forbidden_body(flow: http.HTTPFlow) -> None:
    """No content in the answer to a HEAD, or in a 204 or 304 (RFC 9110
    §6.4.1). mitmproxy sends whatever content a response holds, and a client
    reads no body there: an exit's body, a `response` body patch, a failure
    or a trace report would be read as the start of the next response on the
    connection. A HEAD's answer keeps its Content-Length (the size a GET
    would get, as nginx sends it); a 204 may not have one (RFC 9110 §8.6)."""
    response = flow.response
    if response is None or not response.raw_content:
        return
    if response.status_code == 204:
        response.headers.pop("content-length", None)
    elif response.status_code != 304 and flow.request.method.upper() != "HEAD":
        return
    response.raw_content = b""


def _set_field(fields: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """`headers[name] = value` on a field list: the first field of that name
    (any case) gets the value, further ones go; none: appended."""
    out: list[tuple[str, str]] = []
    done = False
    for k, v in fields:
        if k.lower() == name:
            if not done:
                out.append((k, value))
                done = True
        else:
            out.append((k, v))
    if not done:
        out.append((name, value))
    return out
