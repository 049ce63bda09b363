"""Reading a `resources.cache` block: Kong's fields, checked one by one so
that each error names its field and says what it must be.

Each redis field has a kind; a kind is a JSON Schema (checked with
jsonschema) and the message shown when a value does not match it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator, validators

from ...errors import ConfigError, VaultError
from ..vault import looks_like_reference, resolve_value
from .memory import DEFAULT_DICTIONARY
from .redis import RedisOptions

__all__ = ["REDIS_FIELDS", "CacheConfig"]

log = logging.getLogger("mitmdatakit")  # the package logger: its secret and control-character filters apply

TOP_FIELDS = ("strategy", "memory", "redis")
MEMORY_FIELDS = ("dictionary_name",)
MAX_MS = 2_147_483_646
ROLES = ("master", "slave", "any")
CLOUD_FIELDS = (
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

# JSON Schema's "integer" accepts 1.0; Kong's integer fields do not.
_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


def _kind(schema: dict[str, Any], message: str) -> tuple[Any, str]:
    return _Validator(schema), message


KINDS: dict[str, tuple[Any, str]] = {
    "str": _kind({"type": "string"}, "must be a string"),
    "host": _kind({"type": "string", "minLength": 1}, "must be a non-empty string"),
    "bool": _kind({"type": "boolean"}, "must be true or false"),
    "port": _kind({"type": "integer", "minimum": 0, "maximum": 65535}, "must be an integer from 0 to 65535"),
    "uint": _kind({"type": "integer", "minimum": 0}, "must be a non-negative integer"),
    "ms": _kind({"type": "integer", "minimum": 0, "maximum": MAX_MS}, f"must be an integer from 0 to {MAX_MS} (milliseconds)"),
    "pool": _kind({"type": "integer", "minimum": 1, "maximum": MAX_MS}, f"must be an integer from 1 to {MAX_MS}"),
    "role": _kind({"enum": list(ROLES)}, f"must be one of {', '.join(ROLES)}"),
}

# Kong's redis fields: kind, and whether a vault reference may stand for it.
REDIS_FIELDS: dict[str, tuple[str, bool]] = {
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
# set on RedisOptions as given; the timeouts also take the legacy `timeout`
_PLAIN_OPTIONS = (
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
)


class CacheConfig:
    """The checked settings of one `resources.cache` block: `strategy`,
    `dictionary_name` and `redis_options`. `error(message, field)` makes the
    ConfigError to raise; the redis block is checked whatever the strategy
    (Kong exports carry both), its vault references resolved only for redis."""

    def __init__(
        self,
        config: Any,
        source: str,
        error: Callable[[str, str | None], ConfigError],
        environ: Mapping[str, str] | None = None,
        vaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.error = error
        self._environ = environ
        self._vaults = vaults
        config = {} if config is None else config
        if not isinstance(config, Mapping):
            raise error(f"must be a mapping, not {type(config).__name__}", None)
        for name in config:
            if name not in TOP_FIELDS:
                raise error(f"unknown field {name!r} (known: {', '.join(TOP_FIELDS)})", str(name))
        strategy = config.get("strategy")
        if strategy is None:
            strategy = "memory"
        if strategy not in ("memory", "redis"):
            raise error(f"unknown strategy {strategy!r}: expected 'memory' or 'redis'", "strategy")
        self.strategy: str = strategy
        self.dictionary_name = self._memory_config(config.get("memory"))
        self.redis_options = self._redis_config(config.get("redis"), resolve=strategy == "redis")

    def _check(self, kind: str, value: Any, where: str) -> None:
        validator, message = KINDS[kind]
        if not validator.is_valid(value):
            raise self.error(message, where)

    def _memory_config(self, memory: Any) -> str:
        if memory is None:
            return DEFAULT_DICTIONARY
        if not isinstance(memory, Mapping):
            raise self.error(f"must be a mapping, not {type(memory).__name__}", "memory")
        for name in memory:
            if name not in MEMORY_FIELDS:
                raise self.error(f"unknown field {name!r} (known: dictionary_name)", f"memory.{name}")
        name = memory.get("dictionary_name")
        if name is None:
            return DEFAULT_DICTIONARY
        self._check("host", name, "memory.dictionary_name")
        return str(name)  # a str: the check passed

    def _redis_config(self, redis: Any, resolve: bool) -> RedisOptions:
        opts = RedisOptions()
        if redis is None:
            return opts
        if not isinstance(redis, Mapping):
            raise self.error(f"must be a mapping, not {type(redis).__name__}", "redis")
        values: dict[str, Any] = {}
        for name, value in redis.items():
            spec = REDIS_FIELDS.get(name) if isinstance(name, str) else None
            if spec is None:
                raise self.error(f"unknown redis field {name!r}", f"redis.{name}")
            if value is None:
                continue  # null: unset, as in Kong's exported configs
            values[name] = self._redis_value(name, value, spec, resolve)

        for name in _PLAIN_OPTIONS:
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
            raise self.error("cluster_nodes and sentinel_nodes cannot both be set", "redis.cluster_nodes")
        if opts.sentinel_nodes and not opts.sentinel_master:
            raise self.error("sentinel_master is required with sentinel_nodes", "redis.sentinel_master")
        if opts.cluster_nodes and opts.database != 0:
            raise self.error("Redis Cluster supports database 0 only", "redis.database")
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
                raise self.error(str(e), where) from None
            if kind == "port":
                try:
                    value = int(value)
                except ValueError:
                    raise self.error("vault reference did not yield a port number", where) from None
        if kind == "cloud":
            self._check_cloud(value)
        elif kind.startswith("nodes:"):
            return self._nodes(value, where, host_key=kind.split(":", 1)[1])
        else:
            self._check(kind, value, where)
        return value

    def _check_cloud(self, value: Any) -> None:
        where = "redis.cloud_authentication"
        if not isinstance(value, Mapping):
            raise self.error("must be a mapping", where)
        for name, item in value.items():
            if name not in CLOUD_FIELDS:
                raise self.error(f"unknown field {name!r}", f"{where}.{name}")
            kind = bool if name == "aws_is_serverless" else str  # Kong's types for these fields
            if item is not None and not isinstance(item, kind):
                raise self.error(f"expected {'a boolean' if kind is bool else 'a string'}", f"{where}.{name}")
        if value.get("auth_provider") is not None:
            raise self.error(
                f"cloud authentication ({value['auth_provider']!r}) is not supported here; use username/password",
                f"{where}.auth_provider",
            )

    def _nodes(self, value: Any, where: str, host_key: str) -> list[tuple[str, int]]:
        if not isinstance(value, list) or not value:
            raise self.error(f"must be a non-empty list of {{{host_key}, port}} entries", where)
        nodes = []
        for i, item in enumerate(value):
            at = f"{where}[{i}]"
            if not isinstance(item, Mapping):
                raise self.error(f"must be a mapping with {host_key} and port", at)
            for k in item:
                if k not in (host_key, "port"):
                    raise self.error(f"unknown field {k!r}", f"{at}.{k}")
            host = item.get(host_key)
            host = "127.0.0.1" if host is None else host
            port = item.get("port")
            port = 6379 if port is None else port
            self._check("host", host, f"{at}.{host_key}")
            self._check("port", port, f"{at}.port")
            nodes.append((host, port))
        return nodes
