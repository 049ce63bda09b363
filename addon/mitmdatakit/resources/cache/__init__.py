"""`resources.cache`: the store behind `cache` nodes.

    resources:
      cache:
        strategy: memory            # default; or `redis`
        memory:
          dictionary_name: kong_db_cache
        redis:
          host: 127.0.0.1
          port: 6379
          database: 0
          password: "{vault://env/REDIS_PASSWORD}"   # references are resolved
          ssl: false
          connect_timeout: 2000     # ms (also read_timeout, send_timeout)

One module per job: `memory` and `redis` (the two backends), `config` (the
block's fields), `entries` (what the backends share). Two backends share one
small async interface, `get(key) -> (found, value)`
and `set(key, value, ttl_seconds | None)`; a failure of the store itself
raises `CacheBackendError`, which the node turns into a miss when
`bypass_on_error` is set.

**memory** (in this proxy process): entries live in a store named by
`memory.dictionary_name` (Kong's shared dictionary, default `kong_db_cache`),
so every workflow naming the same dictionary sees the same entries, and
entries survive a workflow reload, as Kong's shared memory does. Each store
is bounded: at most `MEMORY_MAX_ENTRIES` (10,000) entries and
`MEMORY_MAX_BYTES` (64 MiB) of memory held by the entries (the in-memory size
of each key and JSON text, which is up to 4 bytes per character, plus the
bookkeeping of an entry); past either
bound the least recently used entries are evicted, and expired entries are
dropped when read and swept periodically, so memory stays flat. Values are
stored JSON-encoded (a stored value is a copy: later changes to the object
do not leak into the cache, and the same values are cacheable with both
strategies). TTLs use the monotonic clock.

**redis**: several proxies pointed at one Redis share a cache. Keys are
namespaced as `datakit:cache:<key>` (`REDIS_KEY_PREFIX`); values are JSON
text; a TTL is set with `SET ... PX` (so fractional TTLs work). The client
is created lazily, inside the running event loop, on first use, then reused:
it pools connections, at most `keepalive_pool_size` (256); a command finding
them all busy waits up to the connect timeout for one. `aclose()` closes it.
A failed command is retried once at once (a pooled connection may have gone
stale), then raises `CacheBackendError`. Kong's standalone fields are
supported, and Redis Sentinel (`sentinel_master`, `sentinel_nodes`,
`sentinel_role`, ...) and Redis Cluster (`cluster_nodes`,
`cluster_max_redirections`) through redis-py. Accepted but without effect
here: `keepalive_backlog`, `connection_is_proxied`, `server_name` (TLS uses
`host` for SNI and verification), `cluster_max_redirections` (redis-py
follows cluster redirections itself). `cloud_authentication` with an
`auth_provider` is rejected (cloud IAM auth is not implemented). A `timeout`
(ms, the older Kong name) sets connect, read and send timeouts not given
separately; a timeout of 0 means none. Any other field is a config error
naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import Resource, register
from ..vault import vault_entities
from .config import REDIS_FIELDS, CacheConfig
from .entries import CacheBackendError, CacheValueError
from .memory import MEMORY_MAX_BYTES, MEMORY_MAX_ENTRIES, MemoryBackend, MemoryStore, shared_memory_store
from .redis import REDIS_KEY_PREFIX, RedisBackend, RedisOptions

__all__ = [
    "MEMORY_MAX_BYTES",
    "MEMORY_MAX_ENTRIES",
    "REDIS_KEY_PREFIX",
    "CacheBackendError",
    "CacheResource",
    "CacheValueError",
    "MemoryBackend",
    "MemoryStore",
    "RedisBackend",
    "RedisOptions",
]


@register
class CacheResource(Resource):
    """`resources.cache`; nodes call `await resource.get(key)` / `.set(...)`."""

    key = "cache"
    schema: ClassVar[Mapping[str, Any]] = {
        "type": ["object", "null"],
        "properties": {
            "strategy": {"enum": ["memory", "redis", None]},
            "memory": {
                "type": ["object", "null"],
                "properties": {"dictionary_name": {"type": ["string", "null"], "minLength": 1}},
                "additionalProperties": False,
            },
            "redis": {
                "type": ["object", "null"],
                "propertyNames": {"enum": list(REDIS_FIELDS)},
            },
        },
        "additionalProperties": False,
    }

    @classmethod
    def build(cls, config: Any, source: str, info: Any) -> CacheResource:
        return cls(config, source, vaults=vault_entities(info))

    def __init__(
        self,
        config: Any,
        source: str,
        environ: Mapping[str, str] | None = None,
        vaults: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(config, source)
        # `vaults`: the workflow's Vault entities, for `{vault://PREFIX/...}` fields
        settings = CacheConfig(config, source, self.config_error, environ, vaults)
        self.strategy: str = settings.strategy
        self.dictionary_name = settings.dictionary_name
        self.redis_options = settings.redis_options
        self.backend: MemoryBackend | RedisBackend
        if self.strategy == "memory":
            self.backend = MemoryBackend(shared_memory_store(self.dictionary_name))
        else:
            self.backend = RedisBackend(self.redis_options)

    # -- the interface nodes use ---------------------------------------------

    async def get(self, key: str) -> tuple[bool, Any]:
        return await self.backend.get(key)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        await self.backend.set(key, value, ttl)

    async def aclose(self) -> None:
        await self.backend.aclose()

    def __repr__(self) -> str:
        if self.strategy == "redis":
            return f"<CacheResource {self.redis_options.describe()}>"
        return f"<CacheResource memory {self.dictionary_name!r}>"
