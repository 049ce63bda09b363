"""Kong conformance of the four properties whose meaning comes from Kong's
PDK: `kong.response.source`, `kong.client.consumer_groups`,
`kong.client.identity_realm_source` and `kong.node.memory_stats`, through
one real mitmdump serving workflows and a decK file.

Sources in Kong/developer.konghq.com: INDEX "Supported properties" (each
property is the PDK function named there, with the data type given), and
the PDK reference app/_references/gateway/pdk/reference/3.15/:
kong.response.md ("kong.response.get_source()"), kong.client.md
("kong.client.get_consumer_groups()"), kong.node.md
("kong.node.get_memory_stats([unit[, scale]])"); app/gateway/sandboxing.md
lists `kong.client.get_identity_realm_source`, and
app/_kong_plugins/key-auth/index.md ("Identity realms") says realms are
Konnect's centrally-managed consumers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.conformance._support import INDEX, read_in_response_phase, serve, workflow, write_workflows
from tests.harness import Mitmdump, MockServer
from tests.harness.mock_server import Reply

PDK = "app/_references/gateway/pdk/reference/3.15/"
CACHE = {"cache": {"strategy": "memory", "memory": {"dictionary_name": "dk_props_dict"}}}


SET_CONSUMER = [
    {"name": "WHO", "type": "jq", "input": "request.query", "jq": "{username: .who}"},
    {"name": "SET_CONSUMER", "type": "property", "property": "kong.client.consumer", "input": "WHO"},
]


def workflows() -> dict[str, dict[str, Any]]:
    return {
        # the exit answers first (file order, no inputs); the GET then sees it
        "source-exit": workflow("source-exit", [
            {"name": "EXIT", "type": "exit", "status": 201},
            {"name": "GET", "type": "property", "property": "kong.response.source"},
            {"name": "OUT", "type": "jq", "input": "GET", "jq": '{"x-source": .}', "output": "response.headers"},
        ]),
        "source-service": workflow("source-service", read_in_response_phase("kong.response.source", "{source: .}")),
        "source-before": workflow("source-before", [
            {"name": "GET", "type": "property", "property": "kong.response.source"},
            {"name": "OUT", "type": "jq", "input": "GET", "jq": "{source: .}", "output": "response.body"},
        ]),
        "groups-no-deck": workflow("groups-no-deck", [
            *SET_CONSUMER, *read_in_response_phase("kong.client.consumer_groups", "{groups: .}")]),
        "groups-no-consumer": workflow("groups-no-consumer",
                                       read_in_response_phase("kong.client.consumer_groups", "{groups: .}")),
        "realm": workflow("realm", read_in_response_phase("kong.client.identity_realm_source", "{realm: ., type: type}")),
        "memory": workflow("memory", [
            {"name": "K", "type": "static", "values": {"key": "k", "data": "x" * 1000}},
            {"name": "C", "type": "cache", "inputs": {"key": "K.key", "data": "K.data"}},
            *read_in_response_phase("kong.node.memory_stats", "{stats: ., type: type}"),
        ], resources=CACHE),
    }


def deck_file() -> dict[str, Any]:
    """A decK file (the shape `deck gateway dump` writes): membership given
    both ways, `consumers[].groups` and `consumer_groups[].consumers`."""
    nodes = [*SET_CONSUMER, *read_in_response_phase("kong.client.consumer_groups", "{groups: .}")]
    return {
        "_format_version": "3.0",
        "services": [{"name": "svc", "url": "http://127.0.0.1:9", "routes": [{"name": "deck-route", "paths": ["/deck/"]}],
                      "plugins": [{"name": "datakit", "config": {"nodes": nodes}}]}],
        "consumers": [
            {"username": "alice", "groups": [{"name": "gold"}]},
            {"username": "bob"},
            {"username": "carol", "custom_id": "c-1"},
        ],
        "consumer_groups": [
            {"name": "silver", "consumers": [{"username": "alice"}, {"username": "carol"}]},
            {"name": "gold", "id": "6d5e3f0c-1111-4222-8333-444455556666"},
            {"name": "bronze"},
        ],
    }


@pytest.fixture(scope="module")
def api() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", Reply(json={"upstream": True}))
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, api: MockServer) -> Iterator[Mitmdump]:
    directory = write_workflows(tmp_path_factory.mktemp("properties-kong"), workflows())
    deck = deck_file()
    deck["services"][0]["url"] = api.url
    (directory / "zz-kong.yaml").write_text(yaml.safe_dump(deck, sort_keys=False))
    yield from serve(directory, mitm_confdir)


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client


def get(c: httpx.Client, api: MockServer, path: str) -> httpx.Response:
    r = c.get(f"{api.url}/{path}")
    assert r.status_code == 200, r.text
    return r


# -- kong.response.source ------------------------------------------------------


def test_response_source_is_not_read_in_the_access_phase(c, api):
    """PDK kong.response.md "get_source()", **Phases**: header_filter and
    later. A read waits for the response phase; an exit node answering in
    the request phase ends the run before it, so the read never runs (Kong
    would refuse it in access). The `"exit"` value itself is unit-tested
    (tests/unit/test_kong_properties.py)."""
    r = c.get(f"{api.url}/source-exit/x")
    assert r.status_code == 201 and not r.content  # the exit's answer, not the upstream's
    assert "x-source" not in r.headers


def test_response_source_is_service_for_the_upstreams_answer(c, api):
    """PDK kong.response.md "get_source()": `"service"` "when the response was
    originated by successfully contacting the proxied Service"; INDEX: type string."""
    assert get(c, api, "source-service/x").json() == {"source": "service"}


def test_response_source_read_without_inputs_waits_for_the_answer(c, api):
    """PDK kong.response.md "get_source()", **Phases**: header_filter and
    later: a property node reading it, with no inputs to place it, runs
    after proxying and sees the upstream's answer (Kong's phase rule,
    never null)."""
    assert get(c, api, "source-before/x").json() == {"source": "service"}


# -- kong.client.consumer_groups -----------------------------------------------


def test_consumer_groups_of_the_authenticated_consumer(c, api):
    """PDK kong.client.md "get_consumer_groups()": "The authenticated consumer
    groups" (INDEX: type array), the group entities, sorted by name as
    Kong's consumer-group mapping is ("authenticate_consumer_group_by_consumer_id")."""
    groups = get(c, api, "deck/x?who=alice").json()["groups"]
    assert [g["name"] for g in groups] == ["gold", "silver"]
    assert groups[0]["id"] == "6d5e3f0c-1111-4222-8333-444455556666"
    assert isinstance(groups[1]["id"], str) and len(groups[1]["id"]) == 36
    assert all("consumers" not in g for g in groups)


def test_consumer_groups_listed_on_the_group_only(c, api):
    """PDK kong.client.md "get_consumer_groups()": membership written on the
    group entity (`consumer_groups[].consumers`) counts too."""
    assert [g["name"] for g in get(c, api, "deck/x?who=carol").json()["groups"]] == ["silver"]


def test_consumer_in_no_group_has_nil_groups(c, api):
    """PDK kong.client.md "get_consumer_groups()": "Returns `nil` if no
    consumer groups has been authenticated for the current request"."""
    assert get(c, api, "deck/x?who=bob").json() == {"groups": None}


def test_unknown_consumer_has_nil_groups(c, api):
    """PDK "get_consumer_groups()": a consumer in no group of the file: nil."""
    assert get(c, api, "deck/x?who=nobody").json() == {"groups": None}


def test_consumer_groups_without_a_deck_file_are_nil(c, api):
    """PDK "get_consumer_groups()": nil without authenticated groups; a
    workflow file has no consumer groups, even with a consumer set."""
    assert get(c, api, "groups-no-deck/x?who=alice").json() == {"groups": None}


def test_consumer_groups_without_a_consumer_are_nil(c, api):
    """PDK "get_consumer_groups()" (auth_and_later): no consumer, no groups."""
    assert get(c, api, "groups-no-consumer/x").json() == {"groups": None}


# -- kong.client.identity_realm_source ------------------------------------------


def test_identity_realm_source_is_nil_without_a_konnect_realm(c, api):
    """INDEX "Supported properties" (`kong.client.identity_realm_source`,
    `kong.client.get_identity_realm_source()`); key-auth index.md "Identity
    realms": realms are Konnect's centrally-managed consumers, which never
    authenticate here, so the source is nil, as in Kong without a realm."""
    assert get(c, api, "realm/x").json() == {"realm": None, "type": "null"}


# -- kong.node.memory_stats ---------------------------------------------------------


def test_memory_stats_has_kongs_shape(c, api):
    """PDK kong.node.md "get_memory_stats()": a table with `lua_shared_dicts`
    (name -> {allocated_slabs, capacity}) and `workers_lua_vms` (a list of
    {http_allocated_gc, pid}), in bytes by default (numbers); INDEX: type object."""
    body = get(c, api, "memory/x").json()
    assert body["type"] == "object"
    stats = body["stats"]
    assert set(stats) == {"lua_shared_dicts", "workers_lua_vms"}
    (vm,) = stats["workers_lua_vms"]
    assert set(vm) == {"http_allocated_gc", "pid"}
    assert isinstance(vm["pid"], int) and vm["pid"] > 0 and vm["pid"] != os.getpid()
    assert isinstance(vm["http_allocated_gc"], int) and vm["http_allocated_gc"] > 1_000_000


def test_memory_stats_shared_dicts_are_the_cache_dictionaries(c, api):
    """PDK kong.node.md "get_memory_stats()": `lua_shared_dicts` report each
    dictionary's `allocated_slabs` and `capacity`; the cache node's memory
    strategy stores in Kong's shared dict `dictionary_name` (INDEX "Cache
    node"), so the workflow's dictionary is listed with what it holds."""
    stats = get(c, api, "memory/x").json()["stats"]
    shared = stats["lua_shared_dicts"]["dk_props_dict"]
    assert shared["capacity"] == 64 * 1024 * 1024
    assert 1000 < shared["allocated_slabs"] < shared["capacity"]


SOURCES = (INDEX, PDK)
