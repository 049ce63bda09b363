"""The client gets the real response; mitmproxy's records get the scrubbed one.

mitmproxy records a response in its `response` hook chain (Save `-w`,
SaveHar, mitmdump's dumper, mitmweb's view) and sends it after that chain
and the `update` hook chain that follows it. Datakit scrubs the response
fields a workflow built from a secret when it builds the response
(scrub.py), so everything in the chain records `[REDACTED]`. This addon,
appended to the END of mitmproxy's chain by Datakit when the proxy runs,
puts the real values back in its `update` hook, the last one before
mitmproxy sends (mitmweb's view broadcasts the flow in `update` too, so
`response` would be too early), and takes them out again once the
response is sent: mitmweb, the console, `save.file`, export and SaveHar's
file at shutdown see the in-memory flow afterwards.

Addons added to mitmproxy's chain after this one (by another script at run
time) see the real values in `response`/`update`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from mitmproxy import http

from .scrub import ScrubbedResponse

logger = logging.getLogger("mitmdatakit")


class ResponseRestorer:
    """Holds the real values of scrubbed responses until mitmproxy sends them."""

    name = "datakit_response_restorer"  # mitmproxy addon names must be unique

    def __init__(self) -> None:
        self.held: dict[str, ScrubbedResponse] = {}  # flow id -> real values
        self.armed: set[str] = set()  # held flows whose response hook ran
        self.sending: dict[str, tuple[http.HTTPFlow, ScrubbedResponse]] = {}  # restored, to scrub once sent
        self.active = True  # in mitmproxy's chain (False once removed: nothing to scrub for)

    def hold(self, flow: http.HTTPFlow, scrubbed: ScrubbedResponse) -> None:
        """Datakit scrubbed this flow's response (in its request hook for an
        exit, in its response hook otherwise)."""
        self.held[flow.id] = scrubbed

    def response(self, flow: http.HTTPFlow) -> None:
        # last in the chain: every recorder's response hook ran; the update
        # hook chain follows, then mitmproxy sends. (The update that follows
        # the request hook of an exit must not restore: responseheaders and
        # response are still to come.)
        if flow.id in self.held:
            self.armed.add(flow.id)

    def update(self, flows: Sequence[http.HTTPFlow]) -> None:
        for flow in flows:
            if flow.id in self.armed:
                self.armed.discard(flow.id)
                self._restore(flow, self.held.pop(flow.id))

    def error(self, flow: http.HTTPFlow) -> None:
        # never sent (upstream or client failed, killed): it stays scrubbed
        self.held.pop(flow.id, None)
        self.armed.discard(flow.id)

    def done(self) -> None:
        self.active = False
        self.held.clear()
        self.armed.clear()
        for flow, scrubbed in list(self.sending.values()):
            self._rescrub(flow, scrubbed)

    def _restore(self, flow: http.HTTPFlow, scrubbed: ScrubbedResponse) -> None:
        response = flow.response
        if response is None or flow.error is not None:
            return  # killed in the response hook: mitmproxy sends nothing
        try:
            unexpected = scrubbed.restore(response)
        except Exception:
            logger.exception(
                "Datakit: restoring the response for %s failed; the client gets the recorded values ([REDACTED]) [request_id %s]",
                flow.request.method, flow.id,
            )
            return
        if unexpected:
            logger.error(
                "Datakit: another addon changed the %s of the response after Datakit scrubbed it for the record; "
                "the client gets them as changed, possibly [REDACTED] [request_id %s]",
                ", ".join(unexpected), flow.id,
            )
        self.sending[flow.id] = (flow, scrubbed)
        # mitmproxy runs each hook in a task of its own that, once the addons
        # are done (and an intercepted flow is resumed), feeds the hook's
        # completion to the connection, which sends the response; then the
        # task ends. (Not at once: the task may first wait for the
        # connection's event lock, so a plain call_soon would come too early.)
        hook_task = asyncio.current_task()
        if hook_task is not None:
            hook_task.add_done_callback(lambda _: self._rescrub(flow, scrubbed))
        else:  # triggered outside a task (a sync `addons.trigger`)
            asyncio.get_running_loop().call_soon(self._rescrub, flow, scrubbed)

    def _rescrub(self, flow: http.HTTPFlow, scrubbed: ScrubbedResponse) -> None:
        if self.sending.pop(flow.id, None) is None or flow.response is None:
            return
        try:
            scrubbed.rescrub(flow.response)
        except Exception:
            logger.exception("Datakit: scrubbing the sent response failed [request_id %s]", flow.id)


__all__ = ["ResponseRestorer"]
