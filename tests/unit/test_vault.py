"""`resources.vault` (the env vault) and the implicit `vault` node."""

from __future__ import annotations

import base64
import json

import pytest

from mitmdatakit.errors import ConfigError
from mitmdatakit.nodes.base import NodeSpec, Ports, PortType, WorkflowInfo
from mitmdatakit.nodes.vault import VaultNode
from mitmdatakit.resources import resource_types
from mitmdatakit.resources.vault import (
    VaultError,
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
    return VaultNode(NodeSpec(name="vault", type="vault", index=-1, attrs={}), info)


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
        ("{vault://my-vault/my-token}", "unsupported vault 'my-vault'"),
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
