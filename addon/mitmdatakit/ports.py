"""Port types, port sets and phases: the vocabulary the graph, the runtime
and the node types share (Kong keeps these in `data.rs`).

Imports nothing else from the package, so any module may import it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SELF", "Phase", "PortType", "Ports"]

SELF = "$self"
"""The port name of a node-wise connection into or out of a single-value node."""


class PortType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"  # a node with fixed ports, seen as a whole
    MAP = "map"  # string keys, any values (headers, query)
    ANY = "any"

    def accepts(self, value: Any) -> bool:
        """Whether a run-time value fits this type (null always fits: unset)."""
        if value is None or self is PortType.ANY:
            return True
        match self:
            case PortType.STRING:
                return isinstance(value, str)
            case PortType.NUMBER:
                return isinstance(value, (int, float)) and not isinstance(value, bool)
            case PortType.BOOLEAN:
                return isinstance(value, bool)
            case PortType.MAP | PortType.OBJECT:
                return isinstance(value, Mapping)
        return False

    def converts_from(self, source: PortType) -> bool:
        """Kong's load-time rule: string <-> number connect, checked at run time."""
        return {self, source} == {PortType.STRING, PortType.NUMBER}

    def coerce(self, value: Any) -> Any:
        """The value as this type, converting a number <-> string as Kong does;
        raises ValueError when it neither fits nor converts."""
        if self.accepts(value):
            return value
        if self is PortType.STRING and _is_number(value):
            return _number_text(value)
        if self is PortType.NUMBER and isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError("a string that is not a number") from None  # the value may be a secret
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError("a string that is not a finite number")
            return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
        raise ValueError(f"not a {self}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_text(value: int | float) -> str:
    """Numbers as Lua prints them: a whole float has no '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


class Phase(enum.IntEnum):
    REQUEST = 1  # before proxying (mitmproxy `request` hook)
    RESPONSE = 2  # after the upstream answered (mitmproxy `response` hook)


@dataclass(frozen=True)
class Ports:
    """The ports on one side of a node.

    `named` are the fixed ports with their types. `self_type` is set for
    single-value nodes: their node-wise connection is the port `$self`.
    `dynamic` allows port names chosen by the user (jq inputs, static
    outputs); such ports are of type `any` unless `named` says otherwise.
    """

    named: Mapping[str, PortType] = field(default_factory=dict)
    self_type: PortType | None = None
    dynamic: bool = False

    def type_of(self, port: str) -> PortType | None:
        if port == SELF:
            return self.self_type
        if port in self.named:
            return self.named[port]
        return PortType.ANY if self.dynamic else None
