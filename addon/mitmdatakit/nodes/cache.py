"""`cache`: store or fetch a value in the workflow's `resources.cache`.

Inputs `key` (required string), `ttl` (seconds), `data`; outputs `hit`,
`miss`, `stored` (booleans) and `data`.

- **store** when `data` is connected and not null: the value is written
  under `key` and the outputs are `stored: true`, `hit: false`,
  `miss: false`, `data`: the value stored (passed through, so a
  `SET.data` connection works like the data source itself).
- **fetch** otherwise: `hit: true, miss: false, data: <cached value>` when
  the key is cached, else `hit: false, miss: true, data: null`; `stored` is
  false. All four outputs are always set, so a `branch` on `hit` or `miss`
  never sees null.

TTL (store only): the `ttl` input when connected and not null, else the
`ttl` attribute, else `DEFAULT_TTL` (300 s, like Kong's proxy-cache). A TTL
of 0 means no expiry (Kong's convention; the memory strategy still bounds
and evicts); a negative TTL is an error. The input may be fractional.

Errors: a missing or non-string `key` (or an empty one) is a node error.
A backend failure (Redis unreachable, timed out, ...) is a node error,
unless `bypass_on_error: true`: then a fetch reports a miss and a store
reports `stored: false` (with `data` still passed through). A value that
cannot be JSON-encoded is always a node error.

The node requires `resources.cache` (as Kong's docs say: "The cache node
requires a cache resource"); without it the workflow does not load.
`resources: {cache: {}}` or `{strategy: memory}` gives the in-process cache.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from ..context import NodeContext
from ..errors import CacheBackendError, NodeError
from ..ports import Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register

log = logging.getLogger("mitmdatakit")  # the package logger: its secret and control-character filters apply

DEFAULT_TTL = 300
"""Seconds an entry lives when neither the `ttl` input nor attribute is set."""


@register
class CacheNode(Node):
    type_name = "cache"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "ttl": {"type": "integer", "minimum": 0},
            "bypass_on_error": {"type": "boolean"},
        },
        "required": [],
    }

    _inputs = Ports(named={"key": PortType.STRING, "ttl": PortType.NUMBER, "data": PortType.ANY})
    _outputs = Ports(
        named={
            "hit": PortType.BOOLEAN,
            "miss": PortType.BOOLEAN,
            "stored": PortType.BOOLEAN,
            "data": PortType.ANY,
        }
    )

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        ttl = self.attr("ttl")
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
            raise self.config_error("must be a non-negative integer (seconds)", field="ttl")
        self.ttl: int | None = ttl
        bypass = self.attr("bypass_on_error", False)
        if not isinstance(bypass, bool):
            raise self.config_error("must be true or false", field="bypass_on_error")
        self.bypass_on_error: bool = bypass

        resources = workflow.resources or {}
        resource = resources.get("cache")
        if resource is None:
            raise self.config_error(
                "the cache node requires a cache resource: add "
                "'resources: {cache: {strategy: memory}}' (or strategy: redis) to the workflow",
                field="resources.cache",
            )
        self.cache = resource

    def summary(self) -> str:
        ttl = self.spec.attrs.get("ttl")
        return "" if ttl is None else f"ttl {ttl}"

    def input_ports(self) -> Ports:
        return self._inputs

    def output_ports(self) -> Ports:
        return self._outputs

    def _ttl(self, value: Any) -> float | None:
        """Seconds to keep a stored entry; None: no expiry."""
        if value is None:
            value = self.ttl if self.ttl is not None else DEFAULT_TTL
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise NodeError(f"ttl must be a number of seconds, not {value!r}")
        if value < 0:
            raise NodeError(f"ttl must not be negative ({value!r})")
        return None if value == 0 else value

    async def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        key = inputs.get("key")
        if key is None:
            raise NodeError("no cache key: the 'key' input is missing or null")
        if not isinstance(key, str):
            raise NodeError(f"cache key must be a string, not {type(key).__name__}")
        if not key:
            raise NodeError("cache key must not be empty")

        data = inputs.get("data")
        if data is not None:
            ttl = self._ttl(inputs.get("ttl"))
            try:
                await self.cache.set(key, data, ttl)
            except CacheBackendError as e:
                if not self.bypass_on_error:
                    raise NodeError(f"cache backend error: {e}") from e
                log.warning("cache node %r: store bypassed: %s", self.name, e)
                return {"hit": False, "miss": False, "stored": False, "data": data}
            return {"hit": False, "miss": False, "stored": True, "data": data}

        try:
            found, value = await self.cache.get(key)
        except CacheBackendError as e:
            if not self.bypass_on_error:
                raise NodeError(f"cache backend error: {e}") from e
            log.warning("cache node %r: fetch bypassed (miss): %s", self.name, e)
            found, value = False, None
        if found:
            return {"hit": True, "miss": False, "stored": False, "data": value}
        return {"hit": False, "miss": True, "stored": False, "data": None}
