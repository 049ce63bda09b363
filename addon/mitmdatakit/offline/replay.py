"""Replaying recorded traffic through the current workflows: `datakit
replay FLOWFILE` and the pytest plugin's `datakit.replay(...)`.

Each HTTP flow of a mitmproxy flow file (`mitmdump -w`) runs again, offline:
the request as the client sent it, and the upstream's recorded response in
place of the upstream (the engine keeps both on flows a workflow ran on,
originals.py). `call` nodes are real calls to their URLs, as in `datakit
run` (a flow file holds no record of them). The client response the replay
produces is compared with the recorded one (diff.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import http

from .. import originals
from ..errors import DatakitError
from ..redaction import printable
from ..summary import METADATA_KEY as SUMMARY_KEY
from ..workflow import Workflow
from .diff import DEFAULT_IGNORED_HEADERS, diff_responses
from .results import RunResult
from .runner import OfflineRunner

__all__ = ["FlowReplay", "ReplayError", "ReplayReport", "iter_flows", "read_flows", "replay_flows"]

SAME, CHANGED, SKIPPED = "same", "changed", "skipped"


class ReplayError(DatakitError):
    """A flow file that cannot be replayed (unreadable, no HTTP flow)."""


@dataclass
class FlowReplay:
    """One recorded flow, replayed.

    `outcome`: `same`, `changed` (then `diff` says how, one line per
    difference) or `skipped` (`note` says why: no response was recorded, or
    the recording predates the kept client request)."""

    number: int  # 1-based position among the file's HTTP flows
    method: str
    url: str  # as the client asked
    outcome: str
    workflow: str | None = None  # the workflow that ran in the replay
    recorded_workflow: str | None = None
    diff: list[str] = field(default_factory=list)
    note: str | None = None
    result: RunResult | None = field(default=None, repr=False)

    @property
    def changed(self) -> bool:
        return self.outcome == CHANGED

    def text(self) -> str:
        ran = self.workflow or "no workflow"
        if self.recorded_workflow != self.workflow:
            ran = f"{self.recorded_workflow or 'no workflow'} -> {ran}"
        head = f"{self.outcome:<8} #{self.number} {self.method} {self.url} ({ran})"
        if self.note:
            head += f": {self.note}"
        # a flow file is anyone's to write: its URL and bodies reach the terminal escaped
        return printable("\n".join([head, *(f"           {line}" for line in self.diff)]))


@dataclass
class ReplayReport:
    """Every flow of a file, replayed; `changed` lists the ones that differ."""

    source: str
    flows: list[FlowReplay]

    @property
    def changed(self) -> list[FlowReplay]:
        return [f for f in self.flows if f.changed]

    @property
    def ok(self) -> bool:
        return not self.changed

    def counts(self) -> str:
        n = {k: sum(f.outcome == k for f in self.flows) for k in (SAME, CHANGED, SKIPPED)}
        return f"{len(self.flows)} flow(s): {n[SAME]} same, {n[CHANGED]} changed, {n[SKIPPED]} skipped"

    def text(self) -> str:
        return "\n".join([*(f.text() for f in self.flows), self.counts()]) + "\n"

    def assert_unchanged(self) -> None:
        """Raise AssertionError with the diff when any flow changed."""
        if self.changed:
            shown = "\n".join(f.text() for f in self.changed)
            raise AssertionError(f"replaying {self.source}: {len(self.changed)} flow(s) changed\n{shown}\n{self.counts()}")


def iter_flows(path: str | os.PathLike[str]) -> Iterator[http.HTTPFlow]:
    """The HTTP flows of a mitmproxy flow file, in order, read one at a
    time (a file of 100,000 flows is not held in memory). ReplayError as
    soon as the file turns out unreadable, or at its end without a flow."""
    from mitmproxy import io
    from mitmproxy.exceptions import FlowReadException

    p = Path(path)
    if not p.is_file():
        raise ReplayError(f"{p}: no such file")
    found = False
    try:
        with p.open("rb") as f:
            for item in io.FlowReader(f).stream():
                if isinstance(item, http.HTTPFlow):
                    found = True
                    yield item
    except (FlowReadException, ValueError, KeyError, TypeError) as e:
        raise ReplayError(f"{p}: not a mitmproxy flow file (mitmdump -w): {e}") from None
    except (RecursionError, MemoryError):  # mitmproxy's tnetstring reader recurses, and trusts declared lengths
        raise ReplayError(f"{p}: not a mitmproxy flow file (mitmdump -w): nested too deeply or a length too large") from None
    if not found:
        raise ReplayError(f"{p}: the flow file holds no HTTP flow")


def read_flows(path: str | os.PathLike[str]) -> list[http.HTTPFlow]:
    """The HTTP flows of a mitmproxy flow file, in order."""
    return list(iter_flows(path))


def _replay_flow(recorded: http.HTTPFlow, request: http.Request) -> http.HTTPFlow:
    """A live flow with the client's `request`, as mitmproxy had it before
    any workflow ran; same id, so a request_id in a body stays the same."""
    flow: http.HTTPFlow = recorded.copy()
    flow.id = recorded.id
    flow.request = request
    flow.response = None
    flow.error = None
    flow.metadata = {}
    flow.marked = ""
    flow.comment = ""
    flow.live = True
    return flow


def _recorded_workflow(flow: http.HTTPFlow) -> str | None:
    summary = flow.metadata.get(SUMMARY_KEY)
    return summary.get("workflow") if isinstance(summary, dict) else None


async def replay_flows(
    workflows: Sequence[Workflow],
    flows: Iterable[http.HTTPFlow],
    runner: OfflineRunner,
    *,
    source: str = "<flows>",
    ignore_headers: Iterable[str] = (),
    debug: bool = False,
    keep_results: bool = True,
) -> ReplayReport:
    """Replay every flow through `workflows`; compare the client responses.
    `ignore_headers` adds to the ones always ignored (Date, Content-Length).
    `keep_results`: keep each replay's RunResult (`FlowReplay.result`);
    without, a long file's replay holds one flow at a time.
    ReplayError names the first flow whose recorded messages are invalid."""
    ignored = DEFAULT_IGNORED_HEADERS | {h.lower() for h in ignore_headers}
    report = ReplayReport(source, [])
    for number, recorded in enumerate(flows, 1):
        try:
            request = originals.client_request(recorded)
            upstream = originals.upstream_response(recorded)
        except ValueError as e:
            raise ReplayError(f"{source}: flow #{number}: {e}") from None
        entry = FlowReplay(number, request.method, request.pretty_url, SKIPPED, recorded_workflow=_recorded_workflow(recorded))
        report.flows.append(entry)
        if recorded.response is None:
            error = recorded.error.msg if recorded.error is not None else "none"
            entry.note = f"no response recorded (error: {error})"
            continue
        if entry.recorded_workflow is not None and not originals.kept(recorded):
            entry.note = "recorded without the client's request (an older recording); record it again"
            continue
        flow = _replay_flow(recorded, request)
        result = await runner.run(workflows, flow, service_response=upstream, debug=debug)
        entry.result, entry.workflow = result if keep_results else None, result.workflow
        if result.response is None:
            entry.outcome = CHANGED
            entry.diff = [
                f"the request now goes upstream, but the recording has no upstream response "
                f"(recorded: {recorded.response.status_code} answered by {entry.recorded_workflow or 'no workflow'})",
            ]
            continue
        entry.diff = diff_responses(recorded.response, result.response.message, ignored)
        entry.outcome = CHANGED if entry.diff else SAME
    return report
