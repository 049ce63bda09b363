"""Errors with enough context to act on: which file, node and field."""

from __future__ import annotations


class DatakitError(Exception):
    pass


class ConfigError(DatakitError):
    """A workflow that cannot be loaded. The message names file, node, field.

    `index` is the node's position in `nodes` counted from 1 ("node #1"), as
    in Kong's messages; implicit nodes have none (None or -1).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        node: str | None = None,
        index: int | None = None,
        node_type: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.node = node
        self.index = index
        self.node_type = node_type
        self.field = field

    def located(self, file: str) -> ConfigError:
        """The same error, with the file filled in if it was not known."""
        if self.file is None or self.file == "<memory>":
            self.file = file
        return self

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.node is not None or (self.index is not None and self.index >= 0):
            where = f"node {self.node!r}"
            if self.index is not None and self.index >= 0:
                where = f"node #{self.index}" + (f" {self.node!r}" if self.node is not None else "")
            if self.node_type:
                where += f" ({self.node_type})"
            parts.append(where)
        if self.field:
            parts.append(f"field {self.field!r}")
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class NodeError(DatakitError):
    """A node failed while running; the workflow fails with it."""


class CodecError(NodeError):
    """A value cannot be encoded into a request or response (bad header...)."""
