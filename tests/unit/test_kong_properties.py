"""Edge cases of the properties whose meaning comes from Kong's PDK
(`kong.response.source`, `kong.client.consumer_groups`,
`kong.client.identity_realm_source`, `kong.node.memory_stats`); the
documented behaviour is tested through mitmdump in
tests/conformance/test_properties_kong.py."""

from __future__ import annotations

import os
import tracemalloc
from types import SimpleNamespace
from typing import Any

import pytest
from mitmproxy import flow as mflow
from mitmproxy.test import tflow

from mitmdatakit.client_response import ClientResponse
from mitmdatakit.kong.consumers import ConsumerGroups, same_consumer
from mitmdatakit.memory_stats import memory_stats, process_bytes
from mitmdatakit.properties import PROPERTIES
from mitmdatakit.resources.cache.memory import shared_memory_store


def ctx(flow: Any = None, consumer: Any = None, groups: ConsumerGroups | None = None) -> Any:
    match = SimpleNamespace(consumer_groups=(groups or ConsumerGroups([], [])).groups_of)
    return SimpleNamespace(
        flow=flow or tflow.tflow(), client_response=ClientResponse(), consumer=consumer, credential=None,
        workflow=SimpleNamespace(match=match),
    )


def read(name: str, context: Any) -> Any:
    getter = PROPERTIES[name].get
    assert getter is not None
    return getter(context, "")


# -- kong.response.source -------------------------------------------------------


def test_source_before_an_answer_is_none():
    assert read("kong.response.source", ctx()) is None


def test_source_of_the_upstreams_answer():
    assert read("kong.response.source", ctx(tflow.tflow(resp=True))) == "service"


def test_source_after_an_upstream_error():
    flow = tflow.tflow()
    flow.error = mflow.Error("connection refused")
    assert read("kong.response.source", ctx(flow)) == "error"


def test_an_exit_wins_over_everything():
    flow = tflow.tflow(resp=True)
    flow.error = mflow.Error("late")
    context = ctx(flow)
    context.client_response.answer(200, None, None, "EXIT")
    assert read("kong.response.source", context) == "exit"


# -- kong.client.consumer_groups -------------------------------------------------

GROUPS = ConsumerGroups(
    [{"username": "alice", "groups": [{"name": "gold"}, "plain-name"]}, {"id": "c-id", "groups": [{"id": "g-id"}]}],
    [{"name": "gold"}, {"name": "plain-name"}, {"name": "by-id", "id": "g-id"},
     {"name": "listed", "consumers": ["dave", {"custom_id": "cust-7"}]}],
)


@pytest.mark.parametrize(("consumer", "names"), [
    ({"username": "alice"}, ["gold", "plain-name"]),  # a group referenced by a plain string
    ({"id": "c-id", "username": "other"}, ["by-id"]),  # matched by id, the group referenced by id
    ({"username": "dave"}, ["listed"]),  # a consumer not in `consumers`, listed by name on the group
    ({"custom_id": "cust-7"}, ["listed"]),
    ({"username": "nobody"}, None),
])
def test_groups_of(consumer, names):
    found = GROUPS.groups_of(consumer)
    assert (None if found is None else [g["name"] for g in found]) == names


def test_groups_of_a_non_object_consumer_is_none():
    assert GROUPS.groups_of("alice") is None
    assert GROUPS.groups_of(None) is None


def test_group_entities_drop_nested_lists_and_get_a_stable_id():
    (listed,) = GROUPS.groups_of({"username": "dave"}) or []
    assert set(listed) == {"name", "id"}
    again = ConsumerGroups([], [{"name": "listed", "consumers": ["dave"]}]).groups_of({"username": "dave"}) or []
    assert again[0]["id"] == listed["id"]


def test_no_groups_at_all_is_none():
    assert not ConsumerGroups([{"username": "alice"}], [])
    assert ConsumerGroups([{"username": "alice"}], []).groups_of({"username": "alice"}) is None


def test_identity_fields_must_agree_not_just_exist():
    assert not same_consumer({"username": "a"}, {"id": "a"})
    assert not same_consumer({"username": None}, {"username": None})
    assert same_consumer({"custom_id": 7}, {"custom_id": "7"})


def test_consumer_groups_property_needs_a_consumer():
    assert read("kong.client.consumer_groups", ctx(groups=GROUPS)) is None
    names = [g["name"] for g in read("kong.client.consumer_groups", ctx(consumer={"username": "alice"}, groups=GROUPS))]
    assert names == ["gold", "plain-name"]


def test_identity_realm_source_is_none():
    assert read("kong.client.identity_realm_source", ctx(consumer={"username": "alice"})) is None


# -- kong.node.memory_stats -------------------------------------------------------


def test_memory_stats_shape_and_cache_dictionaries():
    store = shared_memory_store("unit_memory_stats")
    store.set("k", "v" * 500, None)
    stats = read("kong.node.memory_stats", ctx())
    assert set(stats) == {"lua_shared_dicts", "workers_lua_vms"}
    entry = stats["lua_shared_dicts"]["unit_memory_stats"]
    assert entry == {"allocated_slabs": store.size_bytes, "capacity": store.max_bytes}
    assert stats["workers_lua_vms"] == [{"http_allocated_gc": stats["workers_lua_vms"][0]["http_allocated_gc"], "pid": os.getpid()}]
    assert stats["workers_lua_vms"][0]["http_allocated_gc"] > 0


def test_process_bytes_uses_tracemalloc_when_it_runs():
    resident = process_bytes()
    tracemalloc.start()
    try:
        traced = process_bytes()
        assert traced == pytest.approx(tracemalloc.get_traced_memory()[0], abs=1_000_000)
    finally:
        tracemalloc.stop()
    assert traced < resident  # the traced heap since start(), not the whole process


def test_memory_stats_serialize_as_json():
    import json

    stats = json.loads(json.dumps(memory_stats()))
    assert isinstance(stats["workers_lua_vms"][0]["pid"], int)
