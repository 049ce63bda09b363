"""Kong's 3.11-3.14 Datakit schemas against 3.15, the vault-referenceable
fields, and the cache node's strategies and Redis options: through `datakit
validate` (one run over every case file).

Sources, in Kong/developer.konghq.com:
- `app/_schemas/gateway/plugins/<3.11|3.12|3.13|3.14|3.15>/Datakit.json`: each
  difference between an older schema and 3.15 is decided by 3.15 (our target)
  and tested once here, citing both files;
- `app/_data/plugins/referenceable_fields/3.15.json` ("datakit"): the fields
  that take `{vault://...}` references;
- `app/_includes/plugins/caching/strategies.md` (the `datakit` branch) and
  `app/_includes/plugins/redis/enterprise.md` (the `Datakit` examples): the
  cache strategies and the Redis options.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DATAKIT = Path(sys.executable).parent / "datakit"


def schema(version: str) -> str:
    return f"app/_schemas/gateway/plugins/{version}/Datakit.json"


REFERENCEABLE = "app/_data/plugins/referenceable_fields/3.15.json"
STRATEGIES = "app/_includes/plugins/caching/strategies.md"
REDIS_EE = "app/_includes/plugins/redis/enterprise.md"

# referenceable_fields/3.15.json, key "datakit" (copied; the cloud_authentication
# fields are listed there too, see test_cloud_authentication_is_refused_as_unsupported)
REFERENCEABLE_REDIS = ["host", "password", "port", "sentinel_password", "sentinel_username", "server_name", "username"]
# the redis fields of 3.15 Datakit.json that are not referenceable, with a valid value
NOT_REFERENCEABLE_REDIS: dict[str, Any] = {
    "cluster_max_redirections": 5,
    "connect_timeout": 2000,
    "connection_is_proxied": False,
    "database": 0,
    "keepalive_backlog": 10,
    "keepalive_pool_size": 256,
    "read_timeout": 2000,
    "send_timeout": 2000,
    "sentinel_role": "master",
    "ssl": False,
    "ssl_verify": True,
}
REDIS_SAMPLES: dict[str, Any] = {
    **NOT_REFERENCEABLE_REDIS,
    "host": "127.0.0.1",
    "port": 6379,
    "password": "pw",
    "username": "user",
    "server_name": "redis.example",
    "sentinel_master": "mymaster",
    "sentinel_username": "sentinel-user",
    "sentinel_password": "sentinel-pw",
}
ENV = {"DK_REF_VALUE": "secret-text", "DK_REF_PORT": "6380", "DK_REF_HOST": "127.0.0.1"}


def cache_workflow(cache: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": [{"name": "C", "type": "cache", "inputs": {"key": "request.path"}}],
        "resources": {"cache": cache},
    }


def redis(**fields: Any) -> dict[str, Any]:
    return cache_workflow({"strategy": "redis", "redis": fields})


def nodes(*items: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": list(items)}


CALL = {"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/"}

# case id -> the workflow; None expected means accepted, else (field, message fragment)
CASES: dict[str, tuple[dict[str, Any], tuple[str, str] | None]] = {
    # -- 3.11 -> 3.15 ------------------------------------------------------------
    "static.values:string": (nodes({"name": "S", "type": "static", "values": "a string"}), ("values", "expected an object")),
    "static.outputs:non-string": (
        nodes({"name": "S", "type": "static", "values": {"a": 1}, "outputs": {"a": 1}}),
        ("outputs.a", "expected a string"),
    ),
    "jq.inputs:non-string": (nodes({"name": "J", "type": "jq", "jq": ".", "inputs": {"a": 1}}), ("inputs.a", "expected a string")),
    # -- 3.12 -> 3.13 ------------------------------------------------------------
    "call.inputs:url-and-proxies": (
        nodes(
            {"name": "S", "type": "static", "values": {"u": "http://127.0.0.1:9/x", "p": "http://127.0.0.1:3128"}},
            {**CALL, "inputs": {"url": "S.u", "http_proxy": "S.p", "https_proxy": "S.p",
                                "proxy_auth_username": "S.u", "proxy_auth_password": "S.u"}},
        ),
        None,
    ),
    "call.ssl_verify:false": (nodes({**CALL, "ssl_verify": False}), None),
    "call.ssl_verify:not-boolean": (nodes({**CALL, "ssl_verify": "no"}), ("ssl_verify", "expected a boolean")),
    "call.outputs:raw_body": (
        nodes({**CALL, "outputs": {"raw_body": "J"}}, {"name": "J", "type": "jq", "jq": "."}),
        None,
    ),
    # -- 3.14 -> 3.15 ------------------------------------------------------------
    "property.non_nil:true": (nodes({"name": "P", "type": "property", "property": "kong.ctx.shared.x", "non_nil": True}), None),
    "property.non_nil:not-boolean": (
        nodes({"name": "P", "type": "property", "property": "kong.ctx.shared.x", "non_nil": "yes"}),
        ("non_nil", "expected a boolean"),
    ),
    # -- cache strategies ------------------------------------------------------
    "strategy:memory": (cache_workflow({"strategy": "memory"}), None),
    "strategy:memory+dictionary_name": (cache_workflow({"strategy": "memory", "memory": {"dictionary_name": "kong_db_cache"}}), None),
    "strategy:redis": (redis(host="127.0.0.1", port=6379), None),
    "strategy:other": (cache_workflow({"strategy": "disk"}), ("resources.cache.strategy", "expected one of: memory, redis")),
    "redis:enterprise.md-cluster-example-without-cloud-auth": (
        redis(cluster_nodes=[{"ip": "127.0.0.1", "port": 6379}], username="user", port=6379),
        None,
    ),
    **{f"redis.{field}:sample": (redis(**{field: value}), None) for field, value in REDIS_SAMPLES.items()},
    "redis.sentinel_nodes:sample": (redis(sentinel_master="m", sentinel_nodes=[{"host": "127.0.0.1", "port": 26379}]), None),
    "redis.unknown-field": (redis(host="127.0.0.1", colour="blue"), ("resources.cache.redis.colour", "unknown")),
    # -- vault references --------------------------------------------------------
    **{
        f"redis.{field}:vault-reference": (
            redis(**{field: "{vault://env/DK_REF_PORT}" if field == "port" else "{vault://env/DK_REF_VALUE}"}),
            None,
        )
        for field in REFERENCEABLE_REDIS
        if field != "host"
    },
    "redis.host:vault-reference": (redis(host="{vault://env/DK_REF_HOST}"), None),
    **{
        f"redis.{field}:vault-reference-refused": (
            redis(**{field: "{vault://env/DK_REF_PORT}"}),
            (f"resources.cache.redis.{field}", ""),
        )
        for field, value in NOT_REFERENCEABLE_REDIS.items()
        if not isinstance(value, str)
    },
    "resources.vault:vault-reference": (
        {"nodes": [{"name": "J", "type": "jq", "jq": ".", "input": "vault.s"}], "resources": {"vault": {"s": "{vault://env/DK_REF_VALUE}"}}},
        None,
    ),
    "redis.cloud_authentication:auth_provider": (
        redis(host="127.0.0.1", cloud_authentication={"auth_provider": "aws", "aws_region": "{vault://env/DK_REF_VALUE}"}),
        ("resources.cache.redis.cloud_authentication.auth_provider", "not supported"),
    ),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """One `datakit validate --json` over every case file: case id -> entry."""
    directory = tmp_path_factory.mktemp("schema-versions")
    names = {}
    for i, (case_id, (doc, _)) in enumerate(CASES.items()):
        names[f"case{i:03d}.yaml"] = case_id
        (directory / f"case{i:03d}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run(
        [str(DATAKIT), "validate", "--json", str(directory)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **ENV},
    )
    report = json.loads(proc.stdout)
    return {names[Path(e["file"]).name]: e for e in report["files"]}


def _check(results: dict[str, dict[str, Any]], case_id: str) -> None:
    entry = results[case_id]
    expected = CASES[case_id][1]
    if expected is None:
        assert entry["valid"], entry.get("errors")
        return
    field, fragment = expected
    errors = entry.get("errors") or [entry]
    assert not entry["valid"], entry
    assert any((e["field"] or "").removeprefix("config.") == field and fragment in e["message"] for e in errors), [
        e["text"] for e in errors
    ]


def _ids(prefix: str) -> list[str]:
    return [c for c in CASES if c.startswith(prefix)]


@pytest.mark.parametrize("case_id", ["static.values:string", "static.outputs:non-string", "jq.inputs:non-string"])
def test_3_11_rules_loosened_or_tightened_by_3_15(results, case_id):
    """app/_schemas/gateway/plugins/3.11/Datakit.json vs .../3.15/Datakit.json:
    static `values` was a string in 3.11 and is an object in 3.15; static
    `outputs` and jq `inputs` took any value in 3.11 and take connection
    labels (strings) in 3.15. 3.15 decides: the 3.11 forms are refused."""
    _check(results, case_id)


@pytest.mark.parametrize("case_id", _ids("call."))
def test_call_attributes_added_in_3_13(results, case_id):
    """app/_schemas/gateway/plugins/3.12/Datakit.json vs .../3.15/Datakit.json
    (first in 3.13): call inputs `url`, `http_proxy`, `https_proxy`,
    `proxy_auth_username`, `proxy_auth_password`, output `raw_body` and the
    boolean `ssl_verify` (default true) are accepted, with their types."""
    _check(results, case_id)


@pytest.mark.parametrize("case_id", _ids("property.non_nil"))
def test_property_non_nil_added_in_3_15(results, case_id):
    """app/_schemas/gateway/plugins/3.14/Datakit.json (no `non_nil`) vs
    .../3.15/Datakit.json (property `non_nil`, boolean, default false): a
    boolean is accepted, anything else refused."""
    _check(results, case_id)


def test_call_without_url_is_refused_though_3_13_made_it_optional(tmp_path):
    """app/_schemas/gateway/plugins/3.12/Datakit.json requires call `url`;
    .../3.13/Datakit.json to .../3.15/Datakit.json do not (the `url` input,
    changelog "Added support for dynamic url in `call` node"). We keep it
    required, a listed deviation (docs/coming-from-kong.md "Schema limits":
    with neither, the call has nowhere to go; SPEC section 6 says required):
    this test shows it, the xfail below states Kong's rule."""
    path = tmp_path / "no-url.yaml"
    path.write_text(yaml.safe_dump(nodes({"name": "CALL", "type": "call"})))
    proc = subprocess.run([str(DATAKIT), "validate", "--json", str(path)], capture_output=True, text=True, timeout=60)
    entry = json.loads(proc.stdout)["files"][0]
    assert proc.returncode == 1 and entry["field"] == "url" and "required" in entry["message"], entry


@pytest.mark.xfail(strict=True, reason="deliberate: call.url stays required (docs/coming-from-kong.md, Schema limits)")
def test_call_without_url_is_accepted_since_3_13(tmp_path):
    """app/_schemas/gateway/plugins/3.15/Datakit.json: call has no required
    `url` (3.11 and 3.12 listed it in `required`)."""
    path = tmp_path / "no-url.yaml"
    path.write_text(yaml.safe_dump(nodes({"name": "CALL", "type": "call", "inputs": {"url": "request.body"}})))
    proc = subprocess.run([str(DATAKIT), "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("case_id", _ids("strategy:") + _ids("redis:") + [c for c in CASES if c.endswith(":sample")] + ["redis.unknown-field"])
def test_cache_strategies_and_redis_options(results, case_id):
    """app/_includes/plugins/caching/strategies.md (datakit): strategy is
    `redis` or `memory` (with `memory.dictionary_name`, default
    kong_db_cache); app/_includes/plugins/redis/enterprise.md (Datakit
    examples) and app/_schemas/gateway/plugins/3.15/Datakit.json
    (resources.cache.redis): every Redis option is accepted on its own, an
    unknown one is refused."""
    _check(results, case_id)


def test_every_redis_option_of_3_15_is_sampled():
    """app/_schemas/gateway/plugins/3.15/Datakit.json resources.cache.redis:
    the samples above cover each of its properties (cloud_authentication
    separately)."""
    kong = Path(__file__).resolve().parents[2].parent
    for base in (kong, kong.parent):
        reference = base / "shared/reference/kong-datakit-3.15-schema.json"
        if reference.is_file():
            break
    else:
        pytest.skip("Kong's published schema is not beside the repository")
    redis_props = json.loads(reference.read_text())["properties"]["config"]["properties"]["resources"]["properties"]["cache"][
        "properties"]["redis"]["properties"]
    sampled = set(REDIS_SAMPLES) | {"cluster_nodes", "sentinel_nodes", "cloud_authentication"}
    assert set(redis_props) == sampled
    assert sorted(k for k, v in redis_props.items() if v.get("x-referenceable")) == REFERENCEABLE_REDIS


@pytest.mark.parametrize("case_id", [c for c in CASES if "vault-reference" in c])
def test_vault_references_where_kong_allows_them(results, case_id):
    """app/_data/plugins/referenceable_fields/3.15.json ("datakit"): the redis
    fields host, port, username, password, server_name, sentinel_username and
    sentinel_password, and `resources.vault` values, take `{vault://...}`
    references (resolved when loading); the non-referenceable integer and
    boolean redis fields refuse one (3.12 -> 3.13 Datakit.json made host,
    port and server_name referenceable)."""
    _check(results, case_id)


def test_cloud_authentication_is_refused_as_unsupported(results):
    """app/_data/plugins/referenceable_fields/3.15.json lists the
    cloud_authentication fields; app/_includes/plugins/redis/enterprise.md
    shows `auth_provider: aws`. Redis cloud authentication is a listed
    deviation (docs/coming-from-kong.md "Schema limits"): refused, named."""
    _check(results, "redis.cloud_authentication:auth_provider")
