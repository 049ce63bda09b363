"""`cache` with the memory and the Redis backends: miss, store, hit, TTL expiry, one Redis shared by two proxies, `bypass_on_error`.

Through a real mitmdump with real HTTP (the fixtures: conftest.py here)."""

from __future__ import annotations

import json
import time
import uuid

from tests.harness import MockServer, Reply
from tests.integration.nodes._support import TRACE, start_proxy, statuses


def _counter_route(api: MockServer, path: str) -> list[int]:
    calls: list[int] = []

    def handler(req):
        calls.append(1)
        return Reply(json={"n": len(calls), "path": req.path})

    api.route("GET", path, handler)
    return calls


def test_cache_memory_miss_store_hit_then_ttl_expiry(c, api):
    calls = _counter_route(api, "/cache-mem/data")
    key = "mem-" + uuid.uuid4().hex

    r1 = c.get(f"{api.url}/cache-mem/x", params={"key": key})
    assert r1.status_code == 200
    assert r1.headers["x-cache"] == "miss" and r1.headers["x-stored"] == "true"
    assert r1.json() == {"n": 1, "path": "/cache-mem/data"}
    assert len(calls) == 1

    r2 = c.get(f"{api.url}/cache-mem/x", params={"key": key})
    assert r2.status_code == 200
    assert r2.headers["x-cache"] == "hit"
    assert r2.json() == {"n": 1, "path": "/cache-mem/data"}  # the stored value
    assert len(calls) == 1  # a hit does not call the API

    # another key is another entry
    r3 = c.get(f"{api.url}/cache-mem/x", params={"key": key + "-other"})
    assert r3.headers["x-cache"] == "miss" and r3.json()["n"] == 2

    time.sleep(1.3)  # ttl: 1
    r4 = c.get(f"{api.url}/cache-mem/x", params={"key": key})
    assert r4.headers["x-cache"] == "miss"
    assert r4.json()["n"] == 3
    assert len(calls) == 3


def test_cache_trace_shows_outputs(c, api):
    _counter_route(api, "/cache-mem/data")
    key = "trace-" + uuid.uuid4().hex
    report = c.get(f"{api.url}/cache-mem/x", params={"key": key}, headers=TRACE).json()
    assert report["status"] == "PLAN_COMPLETE"
    s = statuses(report)
    assert s["EXIT_HIT"] == "NODE_SKIPPED" and s["SET"] == "NODE_COMPLETE"
    get_done = next(e for e in report["events"] if e["name"] == "GET" and e["action"] == "complete")
    # a null has no `value` (Kong's trace)
    assert {v["key"]: v.get("value") for v in get_done["values"]} == {"hit": False, "miss": True, "stored": False, "data": None}
    assert "value" not in next(v for v in get_done["values"] if v["key"] == "data")


def test_cache_redis_shared_by_two_mitmdump_processes(c, api, redis, workflow_dir, mitm_confdir):
    calls = _counter_route(api, "/cache-redis/data")
    key = "shared-" + uuid.uuid4().hex
    second = start_proxy(workflow_dir, mitm_confdir)
    try:
        r1 = c.get(f"{api.url}/cache-redis/x", params={"key": key})  # process 1
        assert r1.status_code == 200, r1.text
        assert r1.headers["x-cache"] == "miss" and r1.headers["x-stored"] == "true"
        assert len(calls) == 1
        # the entry is in Redis, as JSON, with the node's TTL
        assert json.loads(redis.command("GET", f"datakit:cache:{key}").split(b"\r\n")[1]) == {"n": 1, "path": "/cache-redis/data"}
        pttl = int(redis.command("PTTL", f"datakit:cache:{key}").strip()[1:])
        assert 55_000 < pttl <= 60_000

        with second.client() as c2:  # process 2 sees it
            r2 = c2.get(f"{api.url}/cache-redis/x", params={"key": key})
            assert r2.status_code == 200
            assert r2.headers["x-cache"] == "hit"
            assert r2.json() == {"n": 1, "path": "/cache-redis/data"}
            assert len(calls) == 1

            # and the other way round
            key2 = key + "-2"
            assert c2.get(f"{api.url}/cache-redis/x", params={"key": key2}).headers["x-cache"] == "miss"
        r3 = c.get(f"{api.url}/cache-redis/x", params={"key": key2})
        assert r3.headers["x-cache"] == "hit" and r3.json()["n"] == 2
        assert len(calls) == 2
    finally:
        code = second.stop()
        print(f"\n----- second {second!r} exit={code} log tail -----\n{second.log_tail(40)}")


def test_cache_redis_bypass_on_error_turns_a_dead_redis_into_a_miss(c, api):
    calls = _counter_route(api, "/cache-bypass/data")
    started = time.perf_counter()
    r = c.get(f"{api.url}/cache-bypass/x", params={"key": "k"})
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert r.headers["x-cache"] == "miss"
    assert r.headers["x-stored"] == "false"  # the store was bypassed too
    assert r.json() == {"n": 1, "path": "/cache-bypass/data"}
    assert len(calls) == 1
    assert elapsed < 5, elapsed
    # still a miss the next time (nothing could be stored)
    assert c.get(f"{api.url}/cache-bypass/x", params={"key": "k"}).headers["x-cache"] == "miss"
    assert len(calls) == 2


def test_cache_redis_dead_without_bypass_is_a_500(c, api, proxy):
    calls = _counter_route(api, "/cache-nobypass/data")
    since = proxy.log_offset()
    r = c.get(f"{api.url}/cache-nobypass/x", params={"key": "k"})
    assert r.status_code == 500
    body = r.json()
    assert body["message"] == "An unexpected error occurred"
    assert set(body) == {"message", "request_id"}
    assert calls == []  # the workflow failed at GET
    # the full error is logged
    proxy.wait_for_log(r"workflow cache-nobypass failed at node 'GET'.*cache backend error", since=since)

    r = c.get(f"{api.url}/cache-nobypass-debug/x", params={"key": "k"})
    assert r.status_code == 500
    body = r.json()
    assert body["node"] == {"index": 1, "name": "GET", "type": "cache"}
    assert "cache backend error" in body["error"]
