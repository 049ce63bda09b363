"""The `Datakit` contentview: a flow's workflow run, readable, in mitmweb and
the mitmproxy console (select the view "Datakit" on the request or response).

It shows what summary.py recorded: the workflow, the run's status, the
failing node and a per-node timeline with bars scaled to the run; values only
for traced (debug) runs. It is the automatic choice only for the response of
a failed run, whose body (the generic 500) says less than the summary;
otherwise the body's own view stays the default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mitmproxy import contentviews, http

from .redaction import printable
from .summary import from_flow

VIEW_NAME = "Datakit"
BAR_WIDTH = 30
BAR = "█"
MAX_VALUE_CHARS = 160
MAX_ERROR_CHARS = 2000
NO_RUN = "No Datakit workflow ran on this flow."
DEBUG_HINT = "values: shown for debug runs (the workflow's `debug: true`, or `--set datakit_debug=true`)"


def _seconds(value: Any) -> float | None:
    """A clock reading of the record, None unless a finite number (a loaded
    flow file may hold anything there)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _cut(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _bar(start: float | None, end: float | None, total: float) -> str:
    if start is None:
        return ""
    end = start if end is None else end
    if total <= 0:
        return BAR
    # clamped before int(): a flow file's readings may overflow to infinity
    offset = int(min(max(start / total * BAR_WIDTH, 0.0), BAR_WIDTH - 1))
    width = max(1, round(min((end - start) / total * BAR_WIDTH, BAR_WIDTH - offset)))
    return " " * offset + BAR * width


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return _cut(text.replace("\r", "\\r").replace("\n", "\\n"), MAX_VALUE_CHARS)


def _values_by_node(trace: Mapping[str, Any]) -> dict[Any, list[tuple[str, str, Any]]]:
    """Per node: (direction, key, value) from the trace's run/complete events.
    Keyed by the names as recorded (a loaded flow file may hold anything)."""
    out: dict[Any, list[tuple[str, str, Any]]] = {}
    events = trace.get("events")
    for event in events if isinstance(events, list) else ():
        if not isinstance(event, Mapping) or not isinstance(event.get("values"), list):
            continue
        direction = {"run": "in", "complete": "out"}.get(str(event.get("action")))
        if direction is None:
            continue
        for entry in event["values"]:
            if isinstance(entry, Mapping):
                out.setdefault(str(event.get("name")), []).append((direction, str(entry.get("key")), entry.get("value")))
    return out


def render(record: Mapping[str, Any]) -> str:
    """The summary as text (also used by the `datakit.summary` command)."""
    nodes: Sequence[Mapping[str, Any]] = [n for n in record.get("nodes") or () if isinstance(n, Mapping)]
    total = max([_seconds(record.get("duration")) or 0.0] + [_seconds(n.get("end")) or 0.0 for n in nodes])
    lines = [
        f"workflow    {record.get('workflow')}",
        f"status      {record.get('status')}  ({_ms(_seconds(record.get('duration')))} ms)",
        f"request id  {record.get('request_id')}",
    ]
    failure = record.get("failure")
    if isinstance(failure, Mapping):
        index = "" if failure.get("index") is None else f", #{failure['index']}"
        lines.append(f"failed at   node {failure.get('node')} ({failure.get('type')}{index}): "
                     f"{_cut(failure.get('error'), MAX_ERROR_CHARS)}")
    lines.append("")
    lines.append(f"timeline: ms since the run started; {BAR_WIDTH} columns = {_ms(total)} ms")
    name_w = max([4] + [len(str(n.get("name"))) for n in nodes])
    type_w = max([4] + [len(str(n.get("type"))) for n in nodes])
    lines.append(f"  {'NODE':<{name_w}}  {'TYPE':<{type_w}}  {'STATUS':<13}  {'START':>8}  {'TOOK':>8}  |")
    trace = record.get("trace")
    values = _values_by_node(trace) if isinstance(trace, Mapping) else {}
    for n in nodes:
        start, end = _seconds(n.get("start")), _seconds(n.get("end"))
        took = None if start is None or end is None else end - start
        bar = _bar(start, end, total)
        lines.append(
            f"  {n.get('name')!s:<{name_w}}  {n.get('type')!s:<{type_w}}  {n.get('status')!s:<13}  "
            f"{_ms(start):>8}  {_ms(took):>8}  |{bar}"
        )
        if n.get("error"):
            lines.append(f"      error  {_cut(n['error'], MAX_ERROR_CHARS)}")
        for direction, key, value in values.get(str(n.get("name")), ()):
            lines.append(f"      {direction:<5}  {key} = {_value_text(value)}")
    if not record.get("debug"):
        lines.append("")
        lines.append(DEBUG_HINT)
    return printable("\n".join(lines)) + "\n"  # names and errors from a flow file, for the console


class DatakitContentview(contentviews.Contentview):
    @property
    def name(self) -> str:
        return VIEW_NAME

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        record = from_flow(metadata.flow)
        if record is None:
            return NO_RUN + "\n"
        return render(record)

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        record = from_flow(metadata.flow)
        if record is None:
            return -1  # not offered automatically; selecting it says why it is empty
        flow = metadata.flow
        if record.get("failure") and isinstance(flow, http.HTTPFlow) and metadata.http_message is flow.response:
            return 2  # above JSON's 1: the failed run explains the generic 500
        return 0.01  # selectable, below every view that understands the body


view = DatakitContentview()
