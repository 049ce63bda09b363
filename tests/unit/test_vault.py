"""`resources.vault` (the env vault) and the implicit `vault` node."""

from __future__ import annotations

import base64
import json

import pytest

from mitmdatakit.errors import ConfigError, VaultError
from mitmdatakit.nodes.base import NodeSpec, WorkflowInfo
from mitmdatakit.nodes.vault import VaultNode
from mitmdatakit.ports import Ports, PortType
from mitmdatakit.resources import resource_types
from mitmdatakit.resources.vault import (
    VaultReference,
    VaultResource,
    env_variable_name,
    parse_reference,
    resolve_reference,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("KONG_VAULT_ENV_PREFIX", raising=False)
    monkeypatch.delenv("KONG_VAULT_ENV_DECODE_BASE64", raising=False)


def vault(config, environ=None) -> VaultResource:
    return VaultResource(config, "wf.yaml", environ=environ)


def vault_node(resources) -> VaultNode:
    info = WorkflowInfo(name="t", source="wf.yaml", resources=resources, raw_resources={}, upstreams={})
    return VaultNode(NodeSpec(name="vault", type="vault", index=None, attrs={}), info)


def test_registered():
    from mitmdatakit.nodes.base import _REGISTRY  # not node_types(): it imports every node module

    assert resource_types()["vault"] is VaultResource
    assert _REGISTRY["vault"] is VaultNode
    assert VaultNode.implicit is True


# -- resolving -------------------------------------------------------------


def test_env_whole_variable(monkeypatch):
    monkeypatch.setenv("JWT_HMAC_SECRET", "s3cr3t")
    res = VaultResource({"jwt_hmac_key": "{vault://env/JWT_HMAC_SECRET}"}, "wf.yaml")  # os.environ
    assert res.secrets == {"jwt_hmac_key": "s3cr3t"}


def test_env_field_of_json_value():
    env = {"DB_CREDS": json.dumps({"username": "admin", "password": "p@ss/word"})}
    res = vault({"user": "{vault://env/DB_CREDS/username}", "pw": "{vault://env/DB_CREDS/password}"}, env)
    assert res.secrets == {"user": "admin", "pw": "p@ss/word"}


def test_kong_name_mapping_upper_case_and_dashes():
    env = {"MY_API_TOKEN": "t"}
    assert vault({"a": "{vault://env/my-api-token}", "b": "{vault://env/MY_API_TOKEN}"}, env).secrets == {
        "a": "t",
        "b": "t",
    }
    # Like Kong, a lower-case variable is never found.
    with pytest.raises(ConfigError, match="MY_LOWER is not set"):
        vault({"a": "{vault://env/my_lower}"}, {"my_lower": "x"})


def test_prefix_from_reference_and_from_kong_setting():
    env = {"SECRETS_TOKEN": "prefixed", "TOKEN": "plain"}
    assert vault({"t": "{vault://env/token?prefix=secrets-}"}, env).secrets["t"] == "prefixed"
    env["KONG_VAULT_ENV_PREFIX"] = "SECRETS_"
    assert vault({"t": "{vault://env/token}"}, env).secrets["t"] == "prefixed"
    # an explicit (empty) prefix in the reference wins over the setting
    assert vault({"t": "{vault://env/token?prefix=}"}, env).secrets["t"] == "plain"


def test_version_two_reads_previous():
    env = {"TOKEN": "new", "TOKEN_PREVIOUS": "old"}
    assert vault({"a": "{vault://env/token#1}", "b": "{vault://env/token#2}"}, env).secrets == {"a": "new", "b": "old"}


def test_base64_decode():
    encoded = base64.b64encode(json.dumps({"k": "v"}).encode()).decode()
    env = {"B64": encoded}
    assert vault({"a": "{vault://env/B64/k?base64_decode=true}"}, env).secrets == {"a": "v"}
    env["KONG_VAULT_ENV_DECODE_BASE64"] = "true"
    assert vault({"a": "{vault://env/B64/k}"}, env).secrets == {"a": "v"}
    with pytest.raises(ConfigError, match="not valid base64"):
        vault({"a": "{vault://env/PLAIN?base64_decode=true}"}, {"PLAIN": "not base64!"})


def test_literal_value_is_kept():
    # As for any Kong referenceable field, a plain string is the value itself.
    assert vault({"static": "just-a-value"}, {}).secrets == {"static": "just-a-value"}


def test_empty_or_null_block():
    assert vault(None).secrets == {}
    assert vault({}).secrets == {}


def test_parse_reference_like_kong():
    assert parse_reference("{vault://env/cert/key?prefix=SSL_#1}") == VaultReference(
        name="env", resource="cert", key="key", version=1, config={"prefix": "SSL_"}
    )
    assert parse_reference("{vault://env/a/b/c}") == VaultReference(name="env", resource="a/b", key="c")
    assert parse_reference("{vault://env/a/}") == VaultReference(name="env", resource="a", key=None)
    assert parse_reference("{vault://env/my%2Dvar}").resource == "my-var"
    assert env_variable_name(parse_reference("{vault://env/cert?prefix=ssl-}"), {}) == "SSL_CERT"


# -- errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "reference, text",
    [
        ("{vault://env/DK_MISSING_VAR}", "environment variable DK_MISSING_VAR is not set"),
        ("{vault://env/dk-missing}", "DK_MISSING is not set (Kong's env vault upper-cases"),
        ("{vault://env/NOT_JSON/field}", "NOT_JSON is not JSON, so field 'field' cannot be read"),
        ("{vault://env/JSON_LIST/field}", "holds JSON list, not an object"),
        ("{vault://env/CREDS/nope}", "field 'nope' not found"),
        ("{vault://env/CREDS/port}", "field 'port' of environment variable CREDS is a int, not a string"),
        ("{vault://my-vault/my-token}", "unknown vault 'my-vault'"),
        ("{vault://hcv/secret/path/key}", "unsupported vault 'hcv'"),
        ("{vault://aws/x}", "unsupported vault 'aws'"),
        ("vault://env/CREDS", "not a valid vault reference"),
        ("{vault://env/CREDS", "not a valid vault reference"),
        ("{vault:env/CREDS}", "not a valid vault reference"),
        ("{vault://env}", "empty path"),
        ("{vault://env/}", "empty path"),
        ("{vault:///CREDS}", "missing the vault name"),
        ("{vault://env//key}", "invalid path"),
        ("{vault://env/CREDS#x}", "invalid version"),
        ("{vault://env/CREDS#3}", "versions 1 and 2 only"),
        ("{vault://env/CREDS?ttl=60}", "unknown env vault option 'ttl'"),
        ("{vault://env/CREDS?base64_decode=maybe}", "base64_decode must be true or false"),
    ],
)
def test_errors_are_config_errors_naming_the_entry(reference, text):
    env = {"NOT_JSON": "plain", "JSON_LIST": "[1]", "CREDS": json.dumps({"user": "u", "port": 5432})}
    with pytest.raises(ConfigError) as e:
        vault({"ok": "literal", "my_secret": reference}, env)
    assert e.value.field == "resources.vault.my_secret"
    assert text in e.value.message
    assert "wf.yaml" in str(e.value)
    # the message never carries a secret value
    assert "5432" not in str(e.value) and '"u"' not in str(e.value)


@pytest.mark.parametrize(
    "config, field, text",
    [
        ({"token": 123}, "resources.vault.token", "non-empty string"),
        ({"token": ""}, "resources.vault.token", "non-empty string"),
        ({"a.b": "x"}, "resources.vault.a.b", "invalid secret name"),
        ({"token": "x" * 4096}, "resources.vault.token", "4095"),
        (["{vault://env/X}"], "resources.vault", "must be a mapping"),
    ],
)
def test_block_shape_errors(config, field, text):
    with pytest.raises(ConfigError) as e:
        vault(config, {})
    assert e.value.field == field
    assert text in e.value.message


def test_resolve_reference_directly():
    assert resolve_reference("{vault://env/X}", {"X": "1"}) == "1"
    with pytest.raises(VaultError):
        resolve_reference("{vault://env/X}", {})


def test_repr_hides_values():
    res = vault({"token": "{vault://env/T}"}, {"T": "topsecret"})
    assert "topsecret" not in repr(res)
    assert "topsecret" not in repr(vault_node({"vault": res}))


# -- the implicit node -----------------------------------------------------


def test_node_ports_run_and_secret_outputs():
    env = {"T": "tok", "CREDS": json.dumps({"password": "pw"})}
    res = vault({"token": "{vault://env/T}", "db_pw": "{vault://env/CREDS/password}"}, env)
    node = vault_node({"vault": res})
    assert node.output_ports() == Ports(named={"token": PortType.STRING, "db_pw": PortType.STRING})
    assert node.output_ports().type_of("token") is PortType.STRING
    assert node.output_ports().type_of("other") is None  # unknown port: the graph rejects vault.other
    assert node.input_ports() == Ports()
    assert node.secret_outputs() == frozenset({"token", "db_pw"})
    assert node.run({}, None) == {"token": "tok", "db_pw": "pw"}


def test_node_without_vault_resource_has_no_ports():
    node = vault_node({})
    assert node.output_ports() == Ports(named={})
    assert node.secret_outputs() == frozenset()
    assert node.run({}, None) == {}


# -- Kong Vault entities (top-level `vaults:`) --------------------------------

from mitmdatakit.config import load_document  # noqa: E402
from mitmdatakit.resources.vault import VaultEntity, parse_vault_entities  # noqa: E402

VAULT_EXAMPLE_CONFIG = {
    "resources": {"vault": {"token": "{vault://my-vault/my-token}"}},
    "nodes": [{"name": "OUT", "type": "jq", "input": "vault.token", "jq": "."}],
}
MY_VAULT = {"name": "env", "prefix": "my-vault", "config": {"prefix": "MY_SECRET_"}}


def test_entity_resolves_prefixed_reference():
    entities = parse_vault_entities([MY_VAULT], "wf.yaml")
    assert entities == {"my-vault": VaultEntity(prefix="my-vault", name="env", config={"prefix": "MY_SECRET_"})}
    env = {"MY_SECRET_MY_TOKEN": "tok", "MY_TOKEN": "wrong"}
    assert VaultResource({"t": "{vault://my-vault/my-token}"}, "wf.yaml", environ=env, vaults=entities).secrets == {
        "t": "tok"
    }
    # the built-in vault is still there beside the entity
    both = VaultResource(
        {"a": "{vault://my-vault/my-token}", "b": "{vault://env/my-token}"}, "wf.yaml", environ=env, vaults=entities
    )
    assert both.secrets == {"a": "tok", "b": "wrong"}


def test_entity_config_replaces_process_settings_and_reference_overrides_it():
    entities = parse_vault_entities([
        {"name": "env", "prefix": "plain", "config": None},
        {"name": "env", "prefix": "b64", "config": {"base64_decode": True, "prefix": "ENC_"}},
    ])
    encoded = base64.b64encode(json.dumps({"user": "bob"}).encode()).decode()
    env = {
        "KONG_VAULT_ENV_PREFIX": "SECRETS_",  # applies to {vault://env/...} only, as in Kong
        "KONG_VAULT_ENV_DECODE_BASE64": "true",
        "TOKEN": "plain-token",
        "SECRETS_TOKEN": "process-token",
        "ENC_CREDS": encoded,
        "OTHER_TOKEN": "overridden",
    }
    res = VaultResource(
        {
            "entity": "{vault://plain/token}",
            "process": "{vault://env/token?base64_decode=false}",
            "field": "{vault://b64/creds/user}",
            "override": "{vault://b64/token?prefix=OTHER_&base64_decode=false}",
        },
        "wf.yaml",
        environ=env,
        vaults=entities,
    )
    assert res.secrets == {"entity": "plain-token", "process": "process-token", "field": "bob", "override": "overridden"}


def test_entity_missing_variable_names_the_variable():
    entities = parse_vault_entities([MY_VAULT])
    with pytest.raises(ConfigError) as e:
        VaultResource({"token": "{vault://my-vault/my-token}"}, "wf.yaml", environ={}, vaults=entities)
    assert e.value.field == "resources.vault.token"
    assert "MY_SECRET_MY_TOKEN is not set" in e.value.message


def test_unknown_prefix_lists_declared_ones():
    entities = parse_vault_entities([MY_VAULT])
    with pytest.raises(ConfigError) as e:
        VaultResource({"token": "{vault://my-valut/my-token}"}, "wf.yaml", environ={}, vaults=entities)
    assert e.value.field == "resources.vault.token"
    assert "unknown vault 'my-valut'" in e.value.message and "'my-vault'" in e.value.message


@pytest.mark.parametrize(
    "raw, field, text",
    [
        ({"name": "env"}, "vaults.0.prefix", "required"),
        ({"name": "env", "prefix": "My_Vault"}, "vaults.0.prefix", "invalid vault prefix 'My_Vault'"),
        ({"name": "env", "prefix": "v"}, "vaults.0.prefix", "at least 2 characters"),
        ({"name": "env", "prefix": "vault-"}, "vaults.0.prefix", "invalid vault prefix"),
        ({"name": "env", "prefix": "env"}, "vaults.0.prefix", "name of a vault backend"),
        ({"name": "env", "prefix": "hcv"}, "vaults.0.prefix", "name of a vault backend"),
        ({"prefix": "my-vault"}, "vaults.0.name", "required"),
        ({"name": "hcv", "prefix": "my-vault"}, "vaults.0.name", "vault backend 'hcv' is not implemented"),
        ({"name": "vaultwarden", "prefix": "my-vault"}, "vaults.0.name", "vault backend 'vaultwarden' is unknown"),
        ({"name": "env", "prefix": "my-vault", "config": {"mount": "x"}}, "vaults.0.config.mount", "unknown env vault setting"),
        ({"name": "env", "prefix": "my-vault", "config": {"prefix": "A B"}}, "vaults.0.config.prefix", "invalid env variable prefix"),
        ({"name": "env", "prefix": "my-vault", "config": {"base64_decode": "yes"}}, "vaults.0.config.base64_decode", "true or false"),
        ({"name": "env", "prefix": "my-vault", "config": "MY_"}, "vaults.0.config", "must be a mapping"),
        ({"name": "env", "prefix": "my-vault", "secret": "x"}, "vaults.0.secret", "unknown attribute 'secret'"),
        ({"name": "env", "prefix": "my-vault", "tags": "a"}, "vaults.0.tags", "list of strings"),
        ("env", "vaults.0", "must be a Vault entity mapping"),
    ],
)
def test_entity_errors_name_the_field(raw, field, text):
    with pytest.raises(ConfigError) as e:
        parse_vault_entities([raw], "wf.yaml")
    assert e.value.field == field
    assert text in e.value.message
    assert "wf.yaml" in str(e.value)


def test_duplicate_prefix_and_non_list():
    with pytest.raises(ConfigError) as e:
        parse_vault_entities([MY_VAULT, {**MY_VAULT, "config": {}}], "wf.yaml")
    assert e.value.field == "vaults.1.prefix" and "duplicate vault prefix 'my-vault'" in e.value.message
    with pytest.raises(ConfigError) as e:
        parse_vault_entities({"my-vault": MY_VAULT}, "wf.yaml")
    assert e.value.field == "vaults"
    assert parse_vault_entities(None) == {} and parse_vault_entities([]) == {}


def test_exported_entity_keys_are_accepted():
    exported = {
        **MY_VAULT,
        "id": "2b6d6c9e-0000-4000-8000-000000000000",
        "created_at": 1700000000,
        "updated_at": 1700000001,
        "description": "payments",
        "tags": ["a"],
        "config": {"prefix": "MY_SECRET_", "base64_decode": False, "ttl": 60, "neg_ttl": None, "resurrect_ttl": 10},
    }
    (entity,) = parse_vault_entities([exported]).values()
    assert entity.config == {"prefix": "MY_SECRET_", "base64_decode": False}
    assert entity.description == "payments"


@pytest.mark.parametrize("wrapped", [True, False])
def test_loader_takes_vaults_in_both_shapes(monkeypatch, wrapped):
    monkeypatch.setenv("MY_SECRET_MY_TOKEN", "from-entity")
    doc = {"config": VAULT_EXAMPLE_CONFIG} if wrapped else dict(VAULT_EXAMPLE_CONFIG)
    doc["vaults"] = [MY_VAULT]
    wf = load_document(doc, source="wf.yaml")
    assert wf.info.resources["vault"].secrets == {"token": "from-entity"}
    # the secret is redacted wherever the workflow's redactor looks
    assert wf.redactor.text("token=from-entity") == "token=[REDACTED]"


@pytest.mark.parametrize("wrapped", [True, False])
def test_loader_errors_for_entities(monkeypatch, wrapped):
    monkeypatch.setenv("MY_SECRET_MY_TOKEN", "x")

    def load(vaults, config=VAULT_EXAMPLE_CONFIG):
        doc = {"config": config} if wrapped else dict(config)
        doc["vaults"] = vaults
        return load_document(doc, source="wf.yaml")

    with pytest.raises(ConfigError) as e:
        load(None)  # the example without an entity
    assert e.value.field == "resources.vault.token" and "unknown vault 'my-vault'" in e.value.message
    with pytest.raises(ConfigError) as e:
        load([{"name": "aws", "prefix": "my-vault"}])
    assert e.value.field == "vaults.0.name" and "'aws' is not implemented" in e.value.message
    with pytest.raises(ConfigError) as e:
        load([{"name": "env", "prefix": "my-vault", "config": {"region": "x"}}])
    assert e.value.field == "vaults.0.config.region"
    with pytest.raises(ConfigError) as e:
        load({"name": "env", "prefix": "my-vault"})
    assert e.value.field == "vaults"
    # entities are checked even when no resource uses them
    with pytest.raises(ConfigError) as e:
        load([{"name": "env", "prefix": "BAD"}], {"nodes": [{"name": "S", "type": "static", "values": {"a": 1}}]})
    assert e.value.field == "vaults.0.prefix"
    # `vaults` belongs at the top, not inside the plugin config
    if wrapped:
        with pytest.raises(ConfigError) as e:
            load_document({"config": {**VAULT_EXAMPLE_CONFIG, "vaults": [MY_VAULT]}}, source="wf.yaml")
        assert e.value.field == "config.vaults"


def test_cache_redis_password_through_an_entity(monkeypatch):
    from mitmdatakit.resources.cache import CacheResource

    entities = parse_vault_entities([{"name": "env", "prefix": "redis-secrets", "config": {"prefix": "R_"}}])
    res = CacheResource(
        {"strategy": "redis", "redis": {"host": "127.0.0.1", "password": "{vault://redis-secrets/password}"}},
        "wf.yaml",
        environ={"R_PASSWORD": "pw"},
        vaults=entities,
    )
    assert res.redis_options.password == "pw"

