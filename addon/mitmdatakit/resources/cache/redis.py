"""The `redis` cache strategy: standalone Redis, Sentinel or Cluster through
redis-py, with a client made lazily in the running event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .entries import CacheBackendError, CacheValueError, decode_entry, encode_entry

__all__ = ["REDIS_KEY_PREFIX", "RedisBackend", "RedisOptions"]

log = logging.getLogger("mitmdatakit")  # the package logger: its secret and control-character filters apply

REDIS_KEY_PREFIX = "datakit:cache:"


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
            assert o.sentinel_master is not None  # the config check requires it with sentinel_nodes
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
        return True, decode_entry(raw, key)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        text = encode_entry(value)
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
            except Exception as e:  # noqa: BLE001 - closing must not fail an unload
                log.debug("closing a redis cache connection failed: %s", e)
