"""Every exception the package raises on purpose, in one hierarchy.

    DatakitError                  anything Datakit refuses or fails at
    ├── ConfigError               a workflow that cannot be loaded (file, node, field)
    ├── VaultError                a vault reference that cannot be parsed or resolved
    ├── NodeError                 a node failed while running; the workflow fails
    │   ├── CodecError            a value that cannot be encoded into a message
    │   │   └── BodyDecodeError   a body that does not decode as its content type says
    │   ├── BodyTooLarge          a body over datakit_body_size_limit
    │   ├── BodyStreamed          a body mitmproxy streamed, so it cannot be read
    │   └── CacheValueError       a value that cannot be cached
    ├── CacheBackendError         the cache store failed (the node may bypass it)
    ├── JqError                   a jq runtime error (the message is jq's)
    ├── JqTimeout                 a jq program over its time budget
    ├── JqWorkerFailed            a jq worker died or its result cannot come back
    ├── JWTError                  a token or key that cannot be decoded, signed or verified
    ├── JSONTooDeep               JSON nested deeper than Python parses
    ├── AliasBombError            YAML whose aliases expand beyond the limit
    ├── RequestError              an offline request/response description that cannot be used
    ├── UpstreamError             an offline run's upstream could not be reached
    ├── WorkflowFailed            a run failed at a node (what the client's 500 reports)
    └── RunAborted                a run given up from outside (its client went away)

Errors that callers have always caught as ValueError (VaultError, JWTError,
JSONTooDeep, AliasBombError) stay ValueErrors too. Private exceptions used
for control flow inside one module (`_Overflow`, `_TooDeep`...) stay there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BODY_SIZE_OPTION = "datakit_body_size_limit"


class DatakitError(Exception):
    """Base of every exception the package raises on purpose."""


class ConfigError(DatakitError):
    """A workflow that cannot be loaded. The message names file, node, field.

    `index` is the node's position in `nodes` counted from 1 ("node #1"), as
    in Kong's messages; implicit nodes have none (None).
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
        if self.node is not None or self.index is not None:
            where = f"node {self.node!r}"
            if self.index is not None:
                where = f"node #{self.index}" + (f" {self.node!r}" if self.node is not None else "")
            if self.node_type:
                where += f" ({self.node_type})"
            parts.append(where)
        if self.field:
            parts.append(f"field {self.field!r}")
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class VaultError(DatakitError, ValueError):
    """A reference that cannot be parsed or resolved (a config-time error)."""


# -- running nodes -----------------------------------------------------------


class NodeError(DatakitError):
    """A node failed while running; the workflow fails with it. `outputs`:
    what the node did produce (traced with its `fail` event, never passed on)."""

    def __init__(self, *args: object, outputs: Mapping[str, Any] | None = None) -> None:
        super().__init__(*args)
        self.outputs = outputs


class CodecError(NodeError):
    """A value cannot be encoded into a request or response (bad header...)."""


class BodyDecodeError(CodecError):
    """A body that does not decode as its content type says (strict decoding)."""


class BodyTooLarge(NodeError):
    """A body over the body size limit (before or after decompression)."""

    def __init__(self, what: str, limit: int, *, encoded: bool = False) -> None:
        stage = "before decompression" if encoded else "after decompression"
        super().__init__(
            f"{what} exceeds the body size limit of {limit} bytes ({stage}); "
            f"raise the mitmproxy option {BODY_SIZE_OPTION} to accept it"
        )
        self.limit = limit


class BodyStreamed(NodeError):
    """A body mitmproxy streamed (stream_large_bodies): it cannot be read."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} was streamed by mitmproxy (stream_large_bodies) and cannot be read; "
            "send it with a Content-Length, or raise stream_large_bodies"
        )


class CacheValueError(NodeError):
    """A value that cannot be cached (not JSON-encodable). Never bypassed."""


class CacheBackendError(DatakitError):
    """The cache store failed (unreachable, timed out, refused, corrupt entry)."""


class JqError(DatakitError):
    """A jq runtime error (the message is jq's)."""


class JqTimeout(DatakitError):
    """A jq program ran over its time budget."""


class JqWorkerFailed(DatakitError):
    """The worker died, or its result cannot be returned."""


class JWTError(DatakitError, ValueError):
    """A token or key that cannot be decoded, signed or verified."""


# -- parsing -----------------------------------------------------------------


class JSONTooDeep(DatakitError, ValueError):
    """JSON nested more deeply than the parser follows."""


class AliasBombError(DatakitError, ValueError):
    """YAML whose aliases would expand beyond the node budget."""


# -- offline runs --------------------------------------------------------------


class RequestError(DatakitError):
    """A request or response description that cannot be used."""


class UpstreamError(DatakitError):
    """The real upstream could not be reached (mitmproxy would answer 502)."""


# -- runs ----------------------------------------------------------------------


class WorkflowFailed(DatakitError):
    """A run failed at a node: `index` (None for implicit nodes and the
    engine itself), `name`, `node_type` and the (redacted) `message`."""

    def __init__(self, index: int | None, name: str, node_type: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.name = name
        self.node_type = node_type
        self.message = message


class RunAborted(DatakitError):
    """The run was given up from outside (its client disconnected)."""
