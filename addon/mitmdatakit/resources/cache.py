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

Two backends share one small async interface, `get(key) -> (found, value)`
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

import asyncio
import json
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CacheBackendError, CacheValueError, VaultError
from . import Resource, register
from .vault import looks_like_reference, resolve_value, vault_entities

__all__ = [
    "CacheResource",
    "MemoryBackend",
    "MemoryStore",
    "RedisBackend",
    "RedisOptions",
    "MEMORY_MAX_BYTES",
    "MEMORY_MAX_ENTRIES",
    "REDIS_KEY_PREFIX",
]

log = logging.getLogger(__name__)

MEMORY_MAX_ENTRIES = 10_000
MEMORY_MAX_BYTES = 64 * 1024 * 1024
REDIS_KEY_PREFIX = "datakit:cache:"
DEFAULT_DICTIONARY = "kong_db_cache"
_SWEEP_EVERY = 1024  # sets between sweeps of expired memory entries
# memory of one entry besides its two strings: the (expiry, text) tuple, the
# float and the ordered dict's slot (measured with tracemalloc: about 146)
_ENTRY_OVERHEAD = 160


def _encode(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise CacheValueError(f"value cannot be cached: {e}") from None


def _decode(text: str | bytes, key: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise CacheBackendError(f"cache entry for key {key!r} is not valid JSON") from None


# -- memory ----------------------------------------------------------------


class MemoryStore:
    """A bounded LRU map of JSON text with per-entry expiry (monotonic clock)."""

    def __init__(
        self,
        max_entries: int = MEMORY_MAX_ENTRIES,
        max_bytes: int = MEMORY_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._data: OrderedDict[str, tuple[float | None, str]] = OrderedDict()
        self._bytes = 0
        self._sets = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @staticmethod
    def _cost(key: str, text: str) -> int:
        """Bytes the entry holds: len() would count characters, and a str of
        emoji takes 4 bytes per character."""
        return sys.getsizeof(key) + sys.getsizeof(text) + _ENTRY_OVERHEAD

    def _drop(self, key: str) -> None:
        _, text = self._data.pop(key)
        self._bytes -= self._cost(key, text)

    def get(self, key: str) -> tuple[bool, str | None]:
        entry = self._data.get(key)
        if entry is None:
            return False, None
        expires, text = entry
        if expires is not None and self.clock() >= expires:
            self._drop(key)
            return False, None
        self._data.move_to_end(key)
        return True, text

    def set(self, key: str, text: str, ttl: float | None) -> None:
        cost = self._cost(key, text)
        if cost > self.max_bytes:
            raise CacheBackendError(f"value of {cost} bytes exceeds the memory cache's bound of {self.max_bytes} bytes")
        if key in self._data:
            self._drop(key)
        expires = None if ttl is None else self.clock() + ttl
        self._data[key] = (expires, text)
        self._bytes += cost
        self._sets += 1
        if self._sets % _SWEEP_EVERY == 0:
            self.sweep()
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)

    def sweep(self) -> None:
        """Drop every expired entry."""
        now = self.clock()
        for key in [k for k, (exp, _) in self._data.items() if exp is not None and now >= exp]:
            self._drop(key)

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0


_SHARED_STORES: dict[str, MemoryStore] = {}


def shared_memory_store(name: str) -> MemoryStore:
    """The process-wide store for a dictionary name (Kong's shared dict)."""
    store = _SHARED_STORES.get(name)
    if store is None:
        store = _SHARED_STORES[name] = MemoryStore()
    return store


class MemoryBackend:
    strategy = "memory"

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store if store is not None else MemoryStore()

    async def get(self, key: str) -> tuple[bool, Any]:
        found, text = self.store.get(key)
        if not found:
            return False, None
        return True, _decode(text, key)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        self.store.set(key, _encode(value), ttl)

    async def aclose(self) -> None:
        """The store outlives the workflow (shared by dictionary name)."""


# -- redis -----------------------------------------------------------------


@dataclass
class RedisOptions:
    host: str = "127.0.0.1"
    port: int = 6379
    database: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    ssl_verify: bool = True
    server_name: str | None = None
    connect_timeout: int = 2000  # ms; 0: none
    read_timeout: int = 2000
    send_timeout: int = 2000
    keepalive_pool_size: int = 256
    cluster_nodes: list[tuple[str, int]] = field(default_factory=list)
    cluster_max_redirections: int = 5
    sentinel_master: str | None = None
    sentinel_role: str = "master"
    sentinel_nodes: list[tuple[str, int]] = field(default_factory=list)
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    @property
    def mode(self) -> str:
        if self.cluster_nodes:
            return "cluster"
        if self.sentinel_nodes:
            return "sentinel"
        return "standalone"

    def describe(self) -> str:
        if self.mode == "cluster":
            return "redis cluster " + ",".join(f"{h}:{p}" for h, p in self.cluster_nodes)
        if self.mode == "sentinel":
            return f"redis sentinel master {self.sentinel_master!r}"
        return f"redis {self.host}:{self.port}/{self.database}"


def _seconds(ms: int) -> float | None:
    return None if ms == 0 else ms / 1000


class RedisBackend:
    strategy = "redis"

    def __init__(self, options: RedisOptions, prefix: str = REDIS_KEY_PREFIX) -> None:
        self.options = options
        self.prefix = prefix
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._extra: list[Any] = []  # sentinel manager to close with the client
        read = max(options.read_timeout, options.send_timeout)
        total = None
        if options.connect_timeout and options.read_timeout and options.send_timeout:
            # Hard bound per operation: connect + I/O, one retry.
            total = 2 * (options.connect_timeout + read) / 1000 + 0.5
        self._deadline = total
        # Import redis-py now (when the workflow loads), not on the first flow.
        import redis.asyncio  # noqa: F401
        import redis.asyncio.connection  # noqa: F401

    # The client binds to the event loop it first runs in, so it is built
    # lazily there (workflows load before mitmproxy's loop runs).
    def _connection_kwargs(self) -> dict[str, Any]:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        o = self.options
        io_timeout = None
        if o.read_timeout and o.send_timeout:
            io_timeout = _seconds(max(o.read_timeout, o.send_timeout))
        kwargs: dict[str, Any] = {
            "username": o.username,
            "password": o.password,
            "socket_connect_timeout": _seconds(o.connect_timeout),
            "socket_timeout": io_timeout,
            "retry": Retry(NoBackoff(), 1),
        }
        if o.ssl:
            kwargs["ssl"] = True
            kwargs["ssl_cert_reqs"] = "required" if o.ssl_verify else "none"
            kwargs["ssl_check_hostname"] = bool(o.ssl_verify)
        return kwargs

    def _make_client(self) -> Any:
        o = self.options
        kwargs = self._connection_kwargs()
        if o.mode == "cluster":
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in o.cluster_nodes],
                max_connections=o.keepalive_pool_size,
                **kwargs,
            )
        if o.mode == "sentinel":
            from redis.asyncio.sentinel import Sentinel

            sentinel_kwargs = {
                "username": o.sentinel_username,
                "password": o.sentinel_password,
                "socket_connect_timeout": kwargs["socket_connect_timeout"],
                "socket_timeout": kwargs["socket_timeout"],
                "retry": kwargs["retry"],
            }
            sentinel = Sentinel(
                o.sentinel_nodes,
                sentinel_kwargs=sentinel_kwargs,
                db=o.database,
                max_connections=o.keepalive_pool_size,
                **kwargs,
            )
            self._extra = [sentinel]
            if o.sentinel_role == "master":
                return sentinel.master_for(o.sentinel_master)
            return sentinel.slave_for(o.sentinel_master)

        import redis.asyncio as aioredis
        from redis.asyncio.connection import BlockingConnectionPool, Connection, SSLConnection

        # A blocking pool: past `keepalive_pool_size` busy connections a
        # command waits (up to the connect timeout) for a free one, like
        # Kong's backlog, instead of failing at once.
        use_ssl = kwargs.pop("ssl", False)
        pool = BlockingConnectionPool(
            max_connections=o.keepalive_pool_size,
            timeout=_seconds(o.connect_timeout),
            connection_class=SSLConnection if use_ssl else Connection,
            host=o.host,
            port=o.port,
            db=o.database,
            **kwargs,
        )
        return aioredis.Redis.from_pool(pool)

    def client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # A new loop (tests, a restarted proxy): the old client's
            # connections belong to the old loop and are simply dropped.
            self._client = self._make_client()
            self._loop = loop
        return self._client

    async def _call(self, what: str, key: str, op: Callable[[Any], Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            client = self.client()
            if self._deadline is None:
                return await op(client)
            async with asyncio.timeout(self._deadline):
                return await op(client)
        except CacheValueError:
            raise
        except (RedisError, OSError, TimeoutError) as e:
            detail = str(e) or type(e).__name__
            raise CacheBackendError(f"{self.options.describe()}: {what} {key!r} failed: {detail}") from e

    async def get(self, key: str) -> tuple[bool, Any]:
        raw = await self._call("GET", key, lambda c: c.get(self.prefix + key))
        if raw is None:
            return False, None
        return True, _decode(raw, key)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        text = _encode(value)
        px = None if ttl is None else max(1, round(ttl * 1000))
        await self._call("SET", key, lambda c: c.set(self.prefix + key, text, px=px))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        extra, self._extra = self._extra, []
        if client is None:
            return
        try:
            if loop is not asyncio.get_running_loop():
                return  # cannot close another loop's connections
        except RuntimeError:
            return
        closables = [client] + [s for sentinel in extra for s in sentinel.sentinels]
        for c in closables:
            try:
                await c.aclose()
            except Exception as e:  # closing must not fail an unload
                log.debug("closing a redis cache connection failed: %s", e)


# -- the resource ----------------------------------------------------------

_TOP_FIELDS = ("strategy", "memory", "redis")
_MEMORY_FIELDS = ("dictionary_name",)
_MAX_MS = 2_147_483_646
_CLOUD_FIELDS = (
    "auth_provider",
    "aws_access_key_id",
    "aws_assume_role_arn",
    "aws_cache_name",
    "aws_is_serverless",
    "aws_region",
    "aws_role_session_name",
    "aws_secret_access_key",
    "azure_client_id",
    "azure_client_secret",
    "azure_tenant_id",
    "gcp_service_account_json",
)
# Kong's redis fields: kind, and whether a vault reference may stand for it.
_REDIS_FIELDS: dict[str, tuple[str, bool]] = {
    "host": ("host", True),
    "port": ("port", True),
    "database": ("uint", False),
    "username": ("str", True),
    "password": ("str", True),
    "ssl": ("bool", False),
    "ssl_verify": ("bool", False),
    "server_name": ("str", True),
    "timeout": ("ms", False),
    "connect_timeout": ("ms", False),
    "read_timeout": ("ms", False),
    "send_timeout": ("ms", False),
    "keepalive_pool_size": ("pool", False),
    "keepalive_backlog": ("ms", False),
    "connection_is_proxied": ("bool", False),
    "cluster_nodes": ("nodes:ip", False),
    "cluster_max_redirections": ("uint", False),
    "sentinel_master": ("str", False),
    "sentinel_role": ("role", False),
    "sentinel_nodes": ("nodes:host", False),
    "sentinel_username": ("str", True),
    "sentinel_password": ("str", True),
    "cloud_authentication": ("cloud", False),
}
_ROLES = ("master", "slave", "any")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@register
class CacheResource(Resource):
    """`resources.cache`; nodes call `await resource.get(key)` / `.set(...)`."""

    key = "cache"
    schema = {
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
                "propertyNames": {"enum": list(_REDIS_FIELDS)},
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
        self._environ = environ
        self._vaults = vaults  # the workflow's Vault entities, for `{vault://PREFIX/...}` fields
        config = {} if config is None else config
        if not isinstance(config, Mapping):
            raise self.config_error(f"must be a mapping, not {type(config).__name__}")
        for name in config:
            if name not in _TOP_FIELDS:
                raise self.config_error(f"unknown field {name!r} (known: {', '.join(_TOP_FIELDS)})", field=str(name))
        strategy = config.get("strategy")
        if strategy is None:
            strategy = "memory"
        if strategy not in ("memory", "redis"):
            raise self.config_error(f"unknown strategy {strategy!r}: expected 'memory' or 'redis'", field="strategy")
        self.strategy: str = strategy
        self.dictionary_name = self._memory_config(config.get("memory"))
        # Validated whatever the strategy (Kong exports carry both blocks).
        self.redis_options = self._redis_config(config.get("redis"), resolve=strategy == "redis")
        self.backend: MemoryBackend | RedisBackend
        if strategy == "memory":
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

    # -- validation --------------------------------------------------------

    def _memory_config(self, memory: Any) -> str:
        if memory is None:
            return DEFAULT_DICTIONARY
        if not isinstance(memory, Mapping):
            raise self.config_error(f"must be a mapping, not {type(memory).__name__}", field="memory")
        for name in memory:
            if name not in _MEMORY_FIELDS:
                raise self.config_error(f"unknown field {name!r} (known: dictionary_name)", field=f"memory.{name}")
        name = memory.get("dictionary_name")
        if name is None:
            return DEFAULT_DICTIONARY
        if not isinstance(name, str) or not name:
            raise self.config_error("must be a non-empty string", field="memory.dictionary_name")
        return name

    def _redis_config(self, redis: Any, resolve: bool) -> RedisOptions:
        opts = RedisOptions()
        if redis is None:
            return opts
        if not isinstance(redis, Mapping):
            raise self.config_error(f"must be a mapping, not {type(redis).__name__}", field="redis")
        values: dict[str, Any] = {}
        for name, value in redis.items():
            spec = _REDIS_FIELDS.get(name) if isinstance(name, str) else None
            if spec is None:
                raise self.config_error(f"unknown redis field {name!r}", field=f"redis.{name}")
            if value is None:
                continue  # null: unset, as in Kong's exported configs
            values[name] = self._redis_value(name, value, spec, resolve)

        for name in (
            "host",
            "port",
            "database",
            "username",
            "password",
            "ssl",
            "ssl_verify",
            "server_name",
            "keepalive_pool_size",
            "cluster_max_redirections",
            "sentinel_master",
            "sentinel_role",
            "sentinel_username",
            "sentinel_password",
        ):
            if name in values:
                setattr(opts, name, values[name])
        legacy = values.get("timeout")
        for name in ("connect_timeout", "read_timeout", "send_timeout"):
            if name in values:
                setattr(opts, name, values[name])
            elif legacy is not None:
                setattr(opts, name, legacy)
        opts.cluster_nodes = values.get("cluster_nodes", [])
        opts.sentinel_nodes = values.get("sentinel_nodes", [])
        if opts.cluster_nodes and opts.sentinel_nodes:
            raise self.config_error("cluster_nodes and sentinel_nodes cannot both be set", field="redis.cluster_nodes")
        if opts.sentinel_nodes and not opts.sentinel_master:
            raise self.config_error("sentinel_master is required with sentinel_nodes", field="redis.sentinel_master")
        if opts.cluster_nodes and opts.database != 0:
            raise self.config_error("Redis Cluster supports database 0 only", field="redis.database")
        if resolve and opts.server_name:
            log.info("%s: resources.cache.redis.server_name is accepted but not used (TLS uses host)", self.source)
        return opts

    def _redis_value(self, name: str, value: Any, spec: tuple[str, bool], resolve: bool) -> Any:
        kind, referenceable = spec
        where = f"redis.{name}"
        if referenceable and looks_like_reference(value):
            if not resolve:
                return RedisOptions.__dataclass_fields__[name].default
            try:
                value = resolve_value(value, self._environ, self._vaults)
            except VaultError as e:
                raise self.config_error(str(e), field=where) from None
            if kind == "port":
                try:
                    value = int(value)
                except ValueError:
                    raise self.config_error("vault reference did not yield a port number", field=where) from None
        match kind:
            case "str" | "host":
                if not isinstance(value, str) or (kind == "host" and not value):
                    raise self.config_error(
                        "must be a non-empty string" if kind == "host" else "must be a string", field=where
                    )
            case "bool":
                if not isinstance(value, bool):
                    raise self.config_error("must be true or false", field=where)
            case "port":
                if not _is_int(value) or not 0 <= value <= 65535:
                    raise self.config_error("must be an integer from 0 to 65535", field=where)
            case "uint":
                if not _is_int(value) or value < 0:
                    raise self.config_error("must be a non-negative integer", field=where)
            case "ms":
                if not _is_int(value) or not 0 <= value <= _MAX_MS:
                    raise self.config_error(f"must be an integer from 0 to {_MAX_MS} (milliseconds)", field=where)
            case "pool":
                if not _is_int(value) or not 1 <= value <= _MAX_MS:
                    raise self.config_error(f"must be an integer from 1 to {_MAX_MS}", field=where)
            case "role":
                if value not in _ROLES:
                    raise self.config_error(f"must be one of {', '.join(_ROLES)}", field=where)
            case "cloud":
                self._check_cloud(value)
            case _ if kind.startswith("nodes:"):
                return self._nodes(value, where, host_key=kind.split(":", 1)[1])
        return value

    def _check_cloud(self, value: Any) -> None:
        where = "redis.cloud_authentication"
        if not isinstance(value, Mapping):
            raise self.config_error("must be a mapping", field=where)
        for name, item in value.items():
            if name not in _CLOUD_FIELDS:
                raise self.config_error(f"unknown field {name!r}", field=f"{where}.{name}")
            kind = bool if name == "aws_is_serverless" else str  # Kong's types for these fields
            if item is not None and not isinstance(item, kind):
                raise self.config_error(f"expected {'a boolean' if kind is bool else 'a string'}", field=f"{where}.{name}")
        if value.get("auth_provider") is not None:
            raise self.config_error(
                f"cloud authentication ({value['auth_provider']!r}) is not supported here; use username/password",
                field=f"{where}.auth_provider",
            )

    def _nodes(self, value: Any, where: str, host_key: str) -> list[tuple[str, int]]:
        if not isinstance(value, list) or not value:
            raise self.config_error(f"must be a non-empty list of {{{host_key}, port}} entries", field=where)
        nodes = []
        for i, item in enumerate(value):
            at = f"{where}[{i}]"
            if not isinstance(item, Mapping):
                raise self.config_error(f"must be a mapping with {host_key} and port", field=at)
            for k in item:
                if k not in (host_key, "port"):
                    raise self.config_error(f"unknown field {k!r}", field=f"{at}.{k}")
            host = item.get(host_key)
            host = "127.0.0.1" if host is None else host
            port = item.get("port")
            port = 6379 if port is None else port
            if not isinstance(host, str) or not host:
                raise self.config_error("must be a non-empty string", field=f"{at}.{host_key}")
            if not _is_int(port) or not 0 <= port <= 65535:
                raise self.config_error("must be an integer from 0 to 65535", field=f"{at}.port")
            nodes.append((host, port))
        return nodes
