"""Execution traces: the `X-DataKit-Debug-Trace` report (README.md#debugging)."""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Mapping
from typing import Any

from .codecs import json_type

REDACTED = "[REDACTED]"

NODE_PENDING = "NODE_PENDING"
NODE_RUNNING = "NODE_RUNNING"
NODE_COMPLETE = "NODE_COMPLETE"
NODE_ERROR = "NODE_ERROR"
NODE_CANCELED = "NODE_CANCELED"
NODE_SKIPPED = "NODE_SKIPPED"

PLAN_COMPLETE = "PLAN_COMPLETE"
PLAN_ERROR = "PLAN_ERROR"

# Values larger than this are cut in traces so a report stays readable.
MAX_TRACE_STRING = 64 * 1024


class Redactor:
    """Replaces secret strings (vault values) wherever they appear."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value) if self.secrets else value
        if isinstance(value, Mapping):
            return {self.value(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def _plain(value: Any) -> Any:
    """A JSON-safe copy: lossless body strings may hold surrogates."""
    if isinstance(value, str):
        if len(value) > MAX_TRACE_STRING:
            value = value[:MAX_TRACE_STRING] + f"... ({len(value)} characters)"
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)


class Trace:
    """Events of one workflow run, in Kong's event model (index.md,
    "Execution debug tracing"; 3.15 inline values, phase and source)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.ended_wall: float | None = None
        self.events: list[dict[str, Any]] = []

    def event(
        self,
        name: str,
        node_type: str,
        action: str,
        values: Mapping[str, Any] | None = None,
        secret_ports: Container[str] = (),
        *,
        types: Mapping[str, str] | None = None,
        sources: Mapping[str, Any] | None = None,
        phase: str | None = None,
        duration: float | None = None,
        error: str | None = None,
    ) -> None:
        """One event. `values` None: the event carries none (Kong's second
        `run` of an async node, `resume`, `cancel`); `{}`: an empty list.
        `types`: the ports' declared types (Kong shows `map`, `any`, ...);
        a value's `value` is left out when it is null, as Kong's Lua tables
        drop nil. `secret_ports`: keys derived from a secret (redacted)."""
        event: dict[str, Any] = {"name": name, "type": node_type, "action": action}
        if phase is not None:
            event["phase"] = phase
        event["at"] = round(time.perf_counter() - self.started, 6)
        if duration is not None:
            event["duration"] = round(duration, 6)
        if values is not None or error is not None:
            entries: list[dict[str, Any]] = []
            if error is not None:
                entries.append({"type": "error", "value": self.redactor.text(error)})
            for key, value in (values or {}).items():
                entry: dict[str, Any] = {"key": key, "type": (types or {}).get(key) or json_type(value)}
                if value is not None:
                    entry["value"] = REDACTED if key in secret_ports else self.redactor.value(_plain(value))
                source = (sources or {}).get(key)
                if source is not None:
                    entry["source"] = source
                entries.append(entry)
            event["values"] = entries
        self.events.append(event)

    def finish(self) -> None:
        if self.ended_wall is None:
            self.ended_wall = time.time()

    def report(self, status: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        self.finish()
        ended = self.ended_wall or time.time()
        return {
            "started_at": self.started_wall,
            "ended_at": ended,
            "duration": round(ended - self.started_wall, 6),
            "status": status,
            "nodes": [{k: (self.redactor.value(_plain(v)) if k == "error" else v) for k, v in n.items()} for n in nodes],
            "events": self.events,
        }
