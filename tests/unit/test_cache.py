"""The cache resource (memory and redis backends) and the cache node."""

from __future__ import annotations

import asyncio
import time

import pytest

from mitmdatakit.errors import CacheBackendError, CacheValueError, ConfigError, NodeError
from mitmdatakit.nodes.base import NodeSpec, WorkflowInfo
from mitmdatakit.nodes.cache import DEFAULT_TTL, CacheNode
from mitmdatakit.ports import Ports, PortType
from mitmdatakit.resources import resource_types
from mitmdatakit.resources.cache import (
    MEMORY_MAX_ENTRIES,
    REDIS_KEY_PREFIX,
    CacheResource,
    MemoryBackend,
    MemoryStore,
)
from tests.redis_server import RedisServer, free_port, require_redis, running_redis


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def memory_resource(store: MemoryStore | None = None) -> CacheResource:
    res = CacheResource({"strategy": "memory"}, "t.yaml")
    res.backend = MemoryBackend(store if store is not None else MemoryStore())  # private store per test
    return res


def redis_resource(port: int, **extra) -> CacheResource:
    return CacheResource({"strategy": "redis", "redis": {"host": "127.0.0.1", "port": port, **extra}}, "t.yaml")


def make_node(resource=None, name="C", **attrs) -> CacheNode:
    resources = {} if resource is None else {"cache": resource}
    raw = {} if resource is None else {"cache": resource.config}
    info = WorkflowInfo(name="t", source="t.yaml", resources=resources, raw_resources=raw, upstreams={})
    return CacheNode(NodeSpec(name=name, type="cache", index=0, attrs=attrs), info)


# -- resource config -------------------------------------------------------


def test_registered():
    from mitmdatakit.nodes.base import _REGISTRY  # not node_types(): it imports every node module

    assert resource_types()["cache"] is CacheResource
    assert _REGISTRY["cache"] is CacheNode


def test_default_strategy_is_memory():
    for config in (None, {}, {"strategy": None}, {"memory": {"dictionary_name": None}}):
        res = CacheResource(config, "t.yaml")
        assert res.strategy == "memory"
        assert res.dictionary_name == "kong_db_cache"


def test_same_dictionary_is_shared_across_resources():
    a = CacheResource({"memory": {"dictionary_name": "test_shared_dict"}}, "a.yaml")
    b = CacheResource({"strategy": "memory", "memory": {"dictionary_name": "test_shared_dict"}}, "b.yaml")
    c = CacheResource({"memory": {"dictionary_name": "test_other_dict"}}, "c.yaml")
    assert a.backend.store is b.backend.store
    assert a.backend.store is not c.backend.store


@pytest.mark.parametrize(
    "config, field, text",
    [
        ({"strategy": "memcached"}, "resources.cache.strategy", "unknown strategy"),
        ({"stratgy": "memory"}, "resources.cache.stratgy", "unknown field"),
        ({"memory": {"dict": "x"}}, "resources.cache.memory.dict", "unknown field"),
        ({"memory": {"dictionary_name": 3}}, "resources.cache.memory.dictionary_name", "string"),
        ({"redis": {"hostname": "x"}}, "resources.cache.redis.hostname", "unknown redis field"),
        ({"strategy": "redis", "redis": {"port": "6379"}}, "resources.cache.redis.port", "integer"),
        ({"strategy": "redis", "redis": {"port": 70000}}, "resources.cache.redis.port", "0 to 65535"),
        ({"strategy": "redis", "redis": {"ssl": "yes"}}, "resources.cache.redis.ssl", "true or false"),
        ({"strategy": "redis", "redis": {"database": -1}}, "resources.cache.redis.database", "non-negative"),
        (
            {"strategy": "redis", "redis": {"connect_timeout": 1.5}},
            "resources.cache.redis.connect_timeout",
            "milliseconds",
        ),
        ({"strategy": "redis", "redis": {"sentinel_role": "boss"}}, "resources.cache.redis.sentinel_role", "one of"),
        (
            {"strategy": "redis", "redis": {"sentinel_nodes": [{"host": "h"}]}},
            "resources.cache.redis.sentinel_master",
            "required",
        ),
        (
            {"strategy": "redis", "redis": {"cluster_nodes": [{"host": "h"}]}},
            "resources.cache.redis.cluster_nodes[0].host",
            "unknown field",
        ),
        (
            {"strategy": "redis", "redis": {"cloud_authentication": {"auth_provider": "aws"}}},
            "resources.cache.redis.cloud_authentication.auth_provider",
            "not supported",
        ),
        (
            {"strategy": "redis", "redis": {"password": "{vault://env/DK_TEST_NO_SUCH_VAR}"}},
            "resources.cache.redis.password",
            "DK_TEST_NO_SUCH_VAR is not set",
        ),
        ("memory", None, "must be a mapping"),
    ],
)
def test_config_errors_name_the_field(config, field, text):
    with pytest.raises(ConfigError) as e:
        CacheResource(config, "wf.yaml")
    assert e.value.field == (field or "resources.cache")
    assert text in e.value.message
    assert "wf.yaml" in str(e.value)


def test_kong_exported_redis_block_is_accepted():
    # What Kong's admin API returns: every field, defaults or null.
    redis = {
        "host": "127.0.0.1", "port": 6379, "database": 0, "username": None, "password": None,
        "ssl": False, "ssl_verify": True, "server_name": None, "connect_timeout": 2000,
        "read_timeout": 2000, "send_timeout": 2000, "keepalive_pool_size": 256,
        "keepalive_backlog": None, "connection_is_proxied": False, "cluster_nodes": None,
        "cluster_max_redirections": 5, "sentinel_master": None, "sentinel_role": None,
        "sentinel_nodes": None, "sentinel_username": None, "sentinel_password": None,
        "cloud_authentication": {"auth_provider": None, "aws_is_serverless": True, "aws_region": None},
    }  # fmt: skip
    res = CacheResource({"strategy": "memory", "memory": {"dictionary_name": None}, "redis": redis}, "t.yaml")
    assert res.strategy == "memory"
    res = CacheResource({"strategy": "redis", "redis": redis}, "t.yaml")
    assert res.strategy == "redis"
    assert res.redis_options.mode == "standalone"
    assert res.redis_options.connect_timeout == 2000


def test_redis_options_mapping(monkeypatch):
    monkeypatch.setenv("DK_TEST_REDIS_PW", "s3cret")
    res = CacheResource(
        {"strategy": "redis", "redis": {"host": "cache.internal", "port": 6380, "database": 2,
                                        "username": "u", "password": "{vault://env/DK_TEST_REDIS_PW}",
                                        "timeout": 500, "read_timeout": 700}},
        "t.yaml",
    )  # fmt: skip
    o = res.redis_options
    assert (o.host, o.port, o.database, o.username, o.password) == ("cache.internal", 6380, 2, "u", "s3cret")
    # `timeout` fills in the timeouts not given separately.
    assert (o.connect_timeout, o.read_timeout, o.send_timeout) == (500, 700, 500)
    res = CacheResource(
        {"strategy": "redis", "redis": {"sentinel_master": "m", "sentinel_nodes": [{"host": "s1"}, {"port": 26380}]}},
        "t",
    )
    assert res.redis_options.mode == "sentinel"
    assert res.redis_options.sentinel_nodes == [("s1", 6379), ("127.0.0.1", 26380)]
    res = CacheResource({"strategy": "redis", "redis": {"cluster_nodes": [{"ip": "10.0.0.1", "port": 7000}]}}, "t")
    assert res.redis_options.mode == "cluster"


def test_redis_references_not_resolved_for_memory_strategy():
    # The redis block of a memory cache is validated but its secrets not read.
    res = CacheResource({"strategy": "memory", "redis": {"password": "{vault://env/DK_TEST_NO_SUCH_VAR}"}}, "t")
    assert res.strategy == "memory"


def test_schema_is_a_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(CacheResource.schema)
    v = jsonschema.Draft202012Validator(CacheResource.schema)
    assert v.is_valid({"strategy": "memory", "memory": {"dictionary_name": "x"}})
    assert v.is_valid({"strategy": "redis", "redis": {"host": "h", "cluster_nodes": None}})
    assert not v.is_valid({"strategy": "redis", "redis": {"hostname": "h"}})
    assert not v.is_valid({"strategy": "disk"})


# -- memory backend --------------------------------------------------------


async def test_memory_ttl_expiry_with_fake_clock():
    clock = FakeClock()
    backend = MemoryBackend(MemoryStore(clock=clock))
    await backend.set("k", {"a": [1, 2]}, 10)
    await backend.set("forever", "x", None)
    assert await backend.get("k") == (True, {"a": [1, 2]})
    clock.now += 9.999
    assert await backend.get("k") == (True, {"a": [1, 2]})
    clock.now += 0.001
    assert await backend.get("k") == (False, None)
    assert len(backend.store) == 1  # the expired entry was dropped on read
    clock.now += 10**9
    assert await backend.get("forever") == (True, "x")


async def test_memory_real_short_ttl():
    backend = MemoryBackend(MemoryStore())
    await backend.set("k", 1, 0.05)
    assert await backend.get("k") == (True, 1)
    await asyncio.sleep(0.08)
    assert await backend.get("k") == (False, None)


async def test_memory_overwrite_and_copy_semantics():
    backend = MemoryBackend(MemoryStore())
    value = {"list": [1]}
    await backend.set("k", value, None)
    value["list"].append(2)  # later changes do not leak into the cache
    _found, got = await backend.get("k")
    assert got == {"list": [1]}
    got["list"].append(3)
    assert (await backend.get("k"))[1] == {"list": [1]}
    await backend.set("k", "new", None)
    assert await backend.get("k") == (True, "new")
    assert len(backend.store) == 1


async def test_memory_lru_bound_on_entries():
    store = MemoryStore(max_entries=3)
    backend = MemoryBackend(store)
    for k in "abc":
        await backend.set(k, k, None)
    assert (await backend.get("a"))[0]  # touch a: b is now least recently used
    await backend.set("d", "d", None)
    assert len(store) == 3
    assert (await backend.get("b")) == (False, None)
    for k in "acd":
        assert await backend.get(k) == (True, k)


async def test_memory_stays_flat_under_many_keys():
    store = MemoryStore()
    backend = MemoryBackend(store)
    for i in range(MEMORY_MAX_ENTRIES + 2000):
        await backend.set(f"key-{i}", i, 60)
    assert len(store) == MEMORY_MAX_ENTRIES
    assert await backend.get("key-0") == (False, None)
    assert await backend.get(f"key-{MEMORY_MAX_ENTRIES + 1999}") == (True, MEMORY_MAX_ENTRIES + 1999)


async def test_memory_byte_bound():
    store = MemoryStore(max_entries=1000, max_bytes=1000)
    backend = MemoryBackend(store)
    for i in range(10):
        await backend.set(f"k{i}", "x" * 200, None)
    assert store.size_bytes <= 1000
    assert len(store) < 10
    assert (await backend.get("k9"))[0]
    with pytest.raises(CacheBackendError, match="exceeds"):
        await backend.set("big", "x" * 2000, None)


async def test_memory_sweep_drops_expired():
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for i in range(10):
        store.set(f"k{i}", "1", 1)
    store.set("keep", "1", None)
    clock.now += 2
    store.sweep()
    assert len(store) == 1


async def test_unencodable_value_is_a_node_error():
    backend = MemoryBackend(MemoryStore())
    with pytest.raises(CacheValueError):
        await backend.set("k", {1, 2}, None)
    assert issubclass(CacheValueError, NodeError)


# -- redis backend ---------------------------------------------------------


async def test_redis_set_get_ttl(redis_server):
    res = redis_resource(redis_server.port)
    try:
        assert await res.get("rk-missing") == (False, None)
        await res.set("rk-1", {"n": 1, "s": "é", "l": [True, None]}, 30)
        assert await res.get("rk-1") == (True, {"n": 1, "s": "é", "l": [True, None]})
        # stored JSON-encoded under the documented prefix, with a TTL
        import redis.asyncio as aioredis

        raw = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
        try:
            assert await raw.get(REDIS_KEY_PREFIX + "rk-1") == '{"n":1,"s":"é","l":[true,null]}'.encode()
            pttl = await raw.pttl(REDIS_KEY_PREFIX + "rk-1")
            assert 25_000 < pttl <= 30_000
            await res.set("rk-forever", "v", None)
            assert await raw.pttl(REDIS_KEY_PREFIX + "rk-forever") == -1
            # a corrupt entry is a backend error
            await raw.set(REDIS_KEY_PREFIX + "rk-corrupt", b"{not json")
            with pytest.raises(CacheBackendError, match="not valid JSON"):
                await res.get("rk-corrupt")
        finally:
            await raw.aclose()
        # short TTL really expires
        await res.set("rk-short", 1, 0.1)
        assert await res.get("rk-short") == (True, 1)
        await asyncio.sleep(0.2)
        assert await res.get("rk-short") == (False, None)
    finally:
        await res.aclose()


async def test_redis_client_is_lazy_and_reused(redis_server):
    res = redis_resource(redis_server.port)
    assert res.backend._client is None  # nothing connects when the workflow loads
    await res.set("rk-lazy", 1, 10)
    client = res.backend._client
    assert client is not None
    await asyncio.gather(*(res.get("rk-lazy") for _ in range(20)))
    assert res.backend._client is client
    await res.aclose()
    assert res.backend._client is None
    await res.aclose()  # idempotent


async def test_redis_pool_is_bounded_and_waits(redis_server):
    res = redis_resource(redis_server.port, keepalive_pool_size=2)
    try:
        results = await asyncio.gather(*(res.set(f"pool-{i}", i, 30) for i in range(30)))
        assert results == [None] * 30
        got = await asyncio.gather(*(res.get(f"pool-{i}") for i in range(30)))
        assert got == [(True, i) for i in range(30)]
        assert res.backend._client.connection_pool.max_connections == 2
        info = redis_server.command("INFO", "clients").decode()
        connected = int(info.split("connected_clients:")[1].split()[0])
        assert connected <= 2 + 1  # our pool + this INFO connection
    finally:
        await res.aclose()


async def test_redis_tls(tmp_path, monkeypatch):
    require_redis()
    from harness.tls import generate_self_signed

    certs = generate_self_signed(tmp_path / "certs")
    tls_port = free_port()
    args = ["--tls-port", str(tls_port), "--tls-cert-file", str(certs.cert_pem_path),
            "--tls-key-file", str(certs.key_pem_path), "--tls-ca-cert-file", str(certs.ca_pem_path),
            "--tls-auth-clients", "no"]  # fmt: skip
    try:
        server = RedisServer(args).start()
    except RuntimeError as e:
        if "TLS" in str(e) or "tls" in str(e):
            pytest.skip(f"redis-server built without TLS: {e}")
        raise
    try:
        plain_to_tls = redis_resource(tls_port, connect_timeout=500, read_timeout=500, send_timeout=500)
        unverified = redis_resource(tls_port, ssl=True, ssl_verify=False)
        verified_untrusted = redis_resource(tls_port, ssl=True, ssl_verify=True)
        try:
            await unverified.set("tls-k", "over tls", 30)
            assert await unverified.get("tls-k") == (True, "over tls")
            with pytest.raises(CacheBackendError):  # our CA is not trusted
                await verified_untrusted.get("tls-k")
            with pytest.raises(CacheBackendError):  # plain text to a TLS port
                await plain_to_tls.get("tls-k")
        finally:
            for r in (plain_to_tls, unverified, verified_untrusted):
                await r.aclose()
        # trusting the CA (OpenSSL's SSL_CERT_FILE) makes verification pass
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_pem_path))
        verified = redis_resource(tls_port, ssl=True, ssl_verify=True)
        try:
            assert await verified.get("tls-k") == (True, "over tls")
        finally:
            await verified.aclose()
    finally:
        server.stop()


async def test_two_proxies_share_one_redis(redis_server):
    proxy_a = redis_resource(redis_server.port)
    proxy_b = redis_resource(redis_server.port)
    node_a = make_node(proxy_a, name="SET", ttl=60)
    node_b = make_node(proxy_b, name="GET")
    try:
        assert (await node_b.run({"key": "shared-key"}, None))["miss"] is True
        out = await node_a.run({"key": "shared-key", "data": {"user": "alice"}}, None)
        assert out["stored"] is True
        out = await node_b.run({"key": "shared-key"}, None)
        assert out == {"hit": True, "miss": False, "stored": False, "data": {"user": "alice"}}
    finally:
        await proxy_a.aclose()
        await proxy_b.aclose()


async def test_redis_database_and_auth():
    require_redis()
    import redis.asyncio as aioredis

    with running_redis(["--requirepass", "pw"]) as server:
        bad = redis_resource(server.port)
        good = redis_resource(server.port, password="pw", database=3)
        raw = aioredis.Redis(host="127.0.0.1", port=server.port, password="pw", db=3)
        try:
            with pytest.raises(CacheBackendError):
                await bad.get("k")
            await good.set("k", "v", 10)
            assert await good.get("k") == (True, "v")
            assert await raw.get(REDIS_KEY_PREFIX + "k") == b'"v"'
        finally:
            await bad.aclose()
            await good.aclose()
            await raw.aclose()


async def test_dead_redis_is_a_node_error_and_bypass_gives_a_miss():
    port = free_port()  # nothing listens there
    res = redis_resource(port, connect_timeout=500, read_timeout=500, send_timeout=500)
    try:
        with pytest.raises(CacheBackendError, match=f"127.0.0.1:{port}"):
            await res.get("k")
        strict = make_node(res, name="STRICT")
        started = time.monotonic()
        with pytest.raises(NodeError, match="cache backend error"):
            await strict.run({"key": "k"}, None)
        with pytest.raises(NodeError, match="cache backend error"):
            await strict.run({"key": "k", "data": 1}, None)
        lenient = make_node(res, name="LENIENT", bypass_on_error=True)
        assert await lenient.run({"key": "k"}, None) == {"hit": False, "miss": True, "stored": False, "data": None}
        assert await lenient.run({"key": "k", "data": [1]}, None) == {
            "hit": False, "miss": False, "stored": False, "data": [1],
        }  # fmt: skip
        assert time.monotonic() - started < 5  # refused fast, no long backoff
    finally:
        await res.aclose()


async def test_redis_that_goes_away_and_comes_back():
    require_redis()
    with running_redis() as server:
        res = redis_resource(server.port)
        node = make_node(res, bypass_on_error=True)
        try:
            await res.set("k", 1, 30)
            server.kill()
            assert await node.run({"key": "k"}, None) == {"hit": False, "miss": True, "stored": False, "data": None}
            assert (await node.run({"key": "k", "data": 2}, None))["stored"] is False
            server.restart()  # same port, empty: the pooled client reconnects
            assert (await node.run({"key": "k"}, None))["miss"] is True
            assert (await node.run({"key": "k", "data": 2}, None))["stored"] is True
            assert await node.run({"key": "k"}, None) == {"hit": True, "miss": False, "stored": False, "data": 2}
        finally:
            await res.aclose()


async def test_redis_sentinel():
    require_redis()
    with running_redis() as master:
        conf = f"port {{port}}\nsentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        with running_redis(["--sentinel"], config=conf) as sentinel:
            res = CacheResource(
                {"strategy": "redis", "redis": {"sentinel_master": "mymaster", "sentinel_role": "master",
                                                "sentinel_nodes": [{"host": "127.0.0.1", "port": sentinel.port}]}},
                "t.yaml",
            )  # fmt: skip
            try:
                await res.set("sk", {"via": "sentinel"}, 30)
                assert await res.get("sk") == (True, {"via": "sentinel"})
                plain = redis_resource(master.port)
                assert await plain.get("sk") == (True, {"via": "sentinel"})
                await plain.aclose()
            finally:
                await res.aclose()


async def test_redis_cluster_single_node():
    require_redis()
    with running_redis(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]) as node:
        assert node.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383").startswith(b"+OK")
        for _ in range(200):
            if b"cluster_state:ok" in node.command("CLUSTER", "INFO"):
                break
            await asyncio.sleep(0.02)
        res = CacheResource(
            {"strategy": "redis", "redis": {"cluster_nodes": [{"ip": "127.0.0.1", "port": node.port}]}}, "t.yaml"
        )
        try:
            await res.set("ck", [1, 2, 3], 30)
            assert await res.get("ck") == (True, [1, 2, 3])
            assert await res.get("ck-missing") == (False, None)
        finally:
            await res.aclose()


# -- node ------------------------------------------------------------------


def test_node_ports_and_schema():
    node = make_node(memory_resource())
    assert node.input_ports() == Ports(named={"key": PortType.STRING, "ttl": PortType.NUMBER, "data": PortType.ANY})
    assert node.output_ports() == Ports(
        named={"hit": PortType.BOOLEAN, "miss": PortType.BOOLEAN, "stored": PortType.BOOLEAN, "data": PortType.ANY}
    )
    assert set(CacheNode.schema["properties"]) == {"ttl", "bypass_on_error"}


def test_node_without_cache_resource_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        make_node(None, name="GET")
    assert e.value.node == "GET"
    assert "requires a cache resource" in e.value.message


@pytest.mark.parametrize(
    "attrs, field",
    [
        ({"ttl": -1}, "ttl"),
        ({"ttl": "10"}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"bypass_on_error": "yes"}, "bypass_on_error"),
    ],
)
def test_node_attribute_errors(attrs, field):
    with pytest.raises(ConfigError) as e:
        make_node(memory_resource(), **attrs)
    assert e.value.field == field


async def test_node_fetch_miss_store_then_hit():
    res = memory_resource()
    get = make_node(res, name="GET")
    put = make_node(res, name="SET")
    assert await get.run({"key": "k"}, None) == {"hit": False, "miss": True, "stored": False, "data": None}
    out = await put.run({"key": "k", "data": {"body": [1, "two"]}}, None)
    assert out == {"hit": False, "miss": False, "stored": True, "data": {"body": [1, "two"]}}
    assert await get.run({"key": "k"}, None) == {
        "hit": True, "miss": False, "stored": False, "data": {"body": [1, "two"]},
    }  # fmt: skip


async def test_node_null_data_fetches():
    res = memory_resource()
    await res.set("k", "cached", None)
    node = make_node(res)
    # `data` connected but null: fetch, not store
    assert await node.run({"key": "k", "data": None, "ttl": 5}, None) == {
        "hit": True, "miss": False, "stored": False, "data": "cached",
    }  # fmt: skip


async def test_node_falsy_values_are_stored_and_hit():
    res = memory_resource()
    node = make_node(res)
    for i, value in enumerate([0, False, "", [], {}]):
        assert (await node.run({"key": f"k{i}", "data": value}, None))["stored"] is True
        assert await node.run({"key": f"k{i}"}, None) == {"hit": True, "miss": False, "stored": False, "data": value}


async def test_node_ttl_input_overrides_attribute():
    clock = FakeClock()
    res = memory_resource(MemoryStore(clock=clock))
    node = make_node(res, ttl=100)
    fetch = make_node(res)
    await node.run({"key": "attr", "data": 1}, None)  # attribute: 100 s
    await node.run({"key": "input", "data": 1, "ttl": 10}, None)  # input wins: 10 s
    await node.run({"key": "null-input", "data": 1, "ttl": None}, None)  # null input: attribute
    clock.now += 11
    assert (await fetch.run({"key": "input"}, None))["miss"] is True
    assert (await fetch.run({"key": "attr"}, None))["hit"] is True
    assert (await fetch.run({"key": "null-input"}, None))["hit"] is True
    clock.now += 90
    assert (await fetch.run({"key": "attr"}, None))["miss"] is True


async def test_node_default_ttl_and_zero_means_no_expiry():
    clock = FakeClock()
    res = memory_resource(MemoryStore(clock=clock))
    node = make_node(res)
    await node.run({"key": "default", "data": 1}, None)
    await node.run({"key": "zero", "data": 1, "ttl": 0}, None)
    await node.run({"key": "fraction", "data": 1, "ttl": 0.5}, None)
    clock.now += 0.6
    assert (await node.run({"key": "fraction"}, None))["miss"] is True
    clock.now += DEFAULT_TTL - 1
    assert (await node.run({"key": "default"}, None))["hit"] is True
    clock.now += 1
    assert (await node.run({"key": "default"}, None))["miss"] is True
    clock.now += 10**8
    assert (await node.run({"key": "zero"}, None))["hit"] is True


@pytest.mark.parametrize(
    "inputs, text",
    [
        ({}, "no cache key"),
        ({"key": None, "data": 1}, "no cache key"),
        ({"key": 42}, "must be a string"),
        ({"key": ""}, "must not be empty"),
        ({"key": "k", "data": 1, "ttl": "10"}, "ttl must be a number"),
        ({"key": "k", "data": 1, "ttl": True}, "ttl must be a number"),
        ({"key": "k", "data": 1, "ttl": -5}, "must not be negative"),
        ({"key": "k", "data": 1, "ttl": float("inf")}, "ttl must be a number"),
    ],
)
async def test_node_input_errors(inputs, text):
    node = make_node(memory_resource(), bypass_on_error=True)  # not backend errors: never bypassed
    with pytest.raises(NodeError, match=text):
        await node.run(inputs, None)


async def test_node_unencodable_data_is_an_error_even_with_bypass():
    node = make_node(memory_resource(), bypass_on_error=True)
    with pytest.raises(NodeError, match="cannot be cached"):
        await node.run({"key": "k", "data": object()}, None)


async def test_node_backend_error_with_memory_bound():
    res = memory_resource(MemoryStore(max_bytes=10))
    strict = make_node(res)
    lenient = make_node(res, bypass_on_error=True)
    with pytest.raises(NodeError, match="cache backend error"):
        await strict.run({"key": "k", "data": "x" * 100}, None)
    assert (await lenient.run({"key": "k", "data": "x" * 100}, None))["stored"] is False


async def test_kong_example_get_then_set_flow():
    """The conditionally-store-cached-items example, node by node."""
    res = CacheResource({"strategy": "memory", "memory": {"dictionary_name": "test_kong_example"}}, "t.yaml")
    res.backend.store.clear()
    get = make_node(res, name="GET", ttl=200)
    put = make_node(res, name="SET")
    first = await get.run({"key": "cache key"}, None)
    assert first["miss"] is True  # branch -> DATA, SET, EXIT_MISS
    await put.run({"key": "cache key", "data": {"anything": 1}, "ttl": 100}, None)
    second = await get.run({"key": "cache key"}, None)
    assert second["miss"] is False and second["data"] == {"anything": 1}  # -> EXIT_HIT


@pytest.mark.parametrize(
    "redis, field, text",
    [
        ({"port": 6379.0}, "resources.cache.redis.port", "must be an integer from 0 to 65535"),
        ({"database": True}, "resources.cache.redis.database", "must be a non-negative integer"),
        ({"read_timeout": 2000.0}, "resources.cache.redis.read_timeout", "(milliseconds)"),
        ({"keepalive_pool_size": 0}, "resources.cache.redis.keepalive_pool_size", "must be an integer from 1 to"),
        ({"host": ""}, "resources.cache.redis.host", "must be a non-empty string"),
        ({"sentinel_role": ["master"]}, "resources.cache.redis.sentinel_role", "must be one of master, slave, any"),
        ({"cluster_nodes": [{"ip": "h", "port": 1.0}]}, "resources.cache.redis.cluster_nodes[0].port", "0 to 65535"),
    ],
)
def test_field_kinds_are_kongs_integers_and_strings(redis, field, text):
    """JSON Schema's "integer" would take 6379.0 and its checks would take
    True for 1: Kong's fields do not."""
    with pytest.raises(ConfigError) as info:
        CacheResource({"strategy": "redis", "redis": redis}, "t.yaml")
    assert info.value.field == field
    assert text in info.value.message
