"""Connections between node ports: the label as written and the resolved
connection the runtime reads. Shared by the graph builder, the taint
analysis and the scheduler; imports only the port vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ports import PortType

__all__ = ["Conn", "Label"]


@dataclass(frozen=True)
class Label:
    """A parsed connection label: `NODE`, `NODE.PORT` or `NODE.PORT.KEY`."""

    node: str
    port: str | None = None
    key: str | None = None

    @classmethod
    def parse(cls, text: str) -> Label:
        parts = text.split(".", 2)
        return cls(*parts) if all(parts) else cls("")

    def __str__(self) -> str:
        return ".".join(p for p in (self.node, self.port, self.key) if p is not None)


@dataclass(frozen=True)
class Conn:
    """One resolved connection, as the runtime reads it.

    `src_port` None: the source's node-wise value (a mapping of its ports for
    object nodes). `dst_port` None: spread a mapping over the target's ports.
    A key on either end reads or writes one entry of a map.
    """

    src: int
    src_port: str | None
    src_key: str | None
    dst_port: str | None
    dst_key: str | None
    dst_type: PortType = PortType.ANY
