"""What the implicit sinks `response` and `service_request` share: they
write their inputs into one message of the flow (`writes`), and its body is
buffered only when something connects to their body. A helper module: the
leading underscore keeps `load_all` from taking it for a node type."""

from __future__ import annotations

from .base import Node


class MessageWriterNode(Node):
    implicit = True
    partial_inputs = True

    writes_body = True

    def connected(self, inputs: frozenset[str]) -> None:
        # "*": a node-wise input, which may carry a body
        self.writes_body = bool(inputs & {"body", "*"})

    def buffered_bodies(self) -> frozenset[str]:
        return frozenset({self.writes}) if self.writes is not None and self.writes_body else frozenset()
