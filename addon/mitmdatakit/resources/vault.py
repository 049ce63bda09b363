"""`resources.vault`: named secrets, read from Kong-style vault references.

    resources:
      vault:
        token: "{vault://env/MY_API_TOKEN}"          # the whole variable
        db_password: "{vault://env/DB_CREDS/password}"  # a field of a JSON value

Each entry becomes an output port of the implicit `vault` node
(`vault.token`); the runtime redacts those values in traces and logs.

References are resolved once, when the workflow loads (a reload picks up
changed variables). Only Kong's built-in `env` vault is implemented; it
follows Kong's environment-variable vault exactly:

- the variable name is the reference's resource with `-` replaced by `_`,
  upper-cased: `{vault://env/my-token}` reads `MY_TOKEN` (a variable spelled
  in lower case is never found, as in Kong);
- a prefix is prepended before that: `?prefix=SECRETS_` in the reference,
  else the `KONG_VAULT_ENV_PREFIX` environment variable (Kong's
  `vault_env_prefix`), else none;
- `{vault://env/NAME/field}` JSON-decodes the variable, which must hold a
  flat JSON object, and yields the string under `field`;
- `#2` (version 2) reads `NAME_PREVIOUS`, `#1` the variable itself;
- `?base64_decode=true` (or `KONG_VAULT_ENV_DECODE_BASE64=true`) base64-decodes
  the value (before a field is selected).

A value that is not a reference (does not start with `{vault:`, and has no
`vault://` in it) is used literally, as Kong does for a referenceable field.
Kong Vault entities (extension)
-------------------------------

Kong's docs often reference a Vault *entity* by its prefix, e.g.
`{vault://my-vault/my-token}`. A workflow file may declare such entities in
an optional top-level `vaults:` list (beside `match`/`upstreams`, in the bare
and the `config:`-wrapped shapes), in the shape of Kong's Vault entity (and
of decK's `vaults:`):

    vaults:
      - name: env             # the backend; only `env` is implemented
        prefix: my-vault      # what references use: {vault://my-vault/...}
        description: secrets of the payment API      # optional, ignored
        tags: [payments]                              # optional, ignored
        config:
          prefix: MY_SECRET_  # env variable prefix (optional)
          base64_decode: false                       # optional

As in Kong, an entity's `config` replaces the process-wide settings
(`KONG_VAULT_ENV_PREFIX`, `KONG_VAULT_ENV_DECODE_BASE64` do not apply to it)
and a reference's `?prefix=`/`?base64_decode=` still override it. An entity
prefix must look like Kong's (`^[a-z][a-z0-9-]*[a-z0-9]$`), be unique, and
not be a vault backend name (`env`, `hcv`, ...); `ttl`, `neg_ttl` and
`resurrect_ttl` are accepted in `config` and have no effect (secrets are read
once, when the workflow loads); `id`, `created_at` and `updated_at` of an
exported entity are accepted and ignored.

Everything else that cannot be resolved (bad reference syntax, a vault other
than `env` or a declared entity, a missing variable or field, a value that is
not JSON when a field is asked for) is a configuration error naming the
entry.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import VaultError
from . import Resource, register

__all__ = [
    "VaultEntity",
    "VaultReference",
    "VaultResource",
    "is_reference",
    "parse_reference",
    "parse_vault_entities",
    "resolve_reference",
]

SUPPORTED_VAULTS = ("env",)
"""Vault backends this project implements (Kong also has hcv, aws, gcp, azure, conjur...)."""

KNOWN_BACKENDS = ("env", "hcv", "aws", "gcp", "azure", "conjur")
"""Kong's bundled vault backends: their names cannot be entity prefixes."""

_ENTITY_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")  # Kong's `^[a-z][a-z%d-]-[a-z%d]+$`
_ENV_PREFIX_RE = re.compile(r"^[A-Za-z_-][A-Za-z0-9_-]*$")  # Kong's env vault `config.prefix`
_ENTITY_KEYS = ("name", "prefix", "config", "description", "tags", "id", "created_at", "updated_at")
_ENTITY_IGNORED_CONFIG = ("ttl", "neg_ttl", "resurrect_ttl")

_ENV_CONFIG_KEYS = ("prefix", "base64_decode")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_NAME_RE = re.compile(r"^[^.\s]{1,255}$")


@dataclass(frozen=True)
class VaultReference:
    name: str  # vault (strategy) name: `env`
    resource: str  # what to look up: the variable name, before mapping
    key: str | None = None  # field of a JSON value
    version: int | None = None
    config: Mapping[str, str] | None = None  # `?prefix=...&base64_decode=...`


@dataclass(frozen=True)
class VaultEntity:
    """A Kong Vault entity from the workflow's top-level `vaults:` list."""

    prefix: str  # the name references use: {vault://PREFIX/...}
    name: str  # the backend: `env`
    config: Mapping[str, Any]  # the backend's settings (env: prefix, base64_decode)
    description: str | None = None


def parse_vault_entities(raw: Any, source: str = "<memory>") -> dict[str, VaultEntity]:
    """Validate a top-level `vaults:` list; entities by prefix.

    Raises ConfigError naming the field (`vaults.N.KEY`)."""
    from ..errors import ConfigError

    def error(message: str, where: str) -> ConfigError:
        return ConfigError(message, file=source, field=where)

    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise error(f"must be a list of Kong Vault entities, not {type(raw).__name__}", "vaults")
    entities: dict[str, VaultEntity] = {}
    for i, item in enumerate(raw):
        at = f"vaults.{i}"
        if not isinstance(item, Mapping):
            raise error(
                f"must be a Vault entity mapping ({{name: env, prefix: ..., config: {{...}}}}), not {type(item).__name__}",
                at,
            )
        for key in item:
            if key not in _ENTITY_KEYS:
                raise error(f"unknown attribute {key!r} (a Vault entity has {', '.join(_ENTITY_KEYS[:5])})", f"{at}.{key}")
        prefix = item.get("prefix")
        if not isinstance(prefix, str) or not prefix:
            raise error("required: the prefix that references use, as in {vault://PREFIX/VARIABLE}", f"{at}.prefix")
        if not _ENTITY_PREFIX_RE.match(prefix):
            raise error(
                f"invalid vault prefix {prefix!r}: lower-case letters, digits and '-', starting with a letter "
                "and not ending with '-', at least 2 characters (as in Kong)",
                f"{at}.prefix",
            )
        if prefix in KNOWN_BACKENDS:
            raise error(f"vault prefix {prefix!r} is the name of a vault backend; choose another prefix", f"{at}.prefix")
        if prefix in entities:
            raise error(f"duplicate vault prefix {prefix!r} (prefixes must be unique)", f"{at}.prefix")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise error("required: the vault backend (only 'env' is implemented)", f"{at}.name")
        if name not in SUPPORTED_VAULTS:
            what = "is not implemented" if name in KNOWN_BACKENDS else "is unknown"
            raise error(
                f"vault backend {name!r} {what}: only the environment variable vault 'env' is supported",
                f"{at}.name",
            )
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            raise error("must be a string", f"{at}.description")
        tags = item.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise error("must be a list of strings", f"{at}.tags")
        config = item.get("config")
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise error(f"must be a mapping of the {name} vault's settings, not {type(config).__name__}", f"{at}.config")
        settings: dict[str, Any] = {}
        for key, value in config.items():
            where = f"{at}.config.{key}"
            if key not in _ENV_CONFIG_KEYS and key not in _ENTITY_IGNORED_CONFIG:
                raise error(f"unknown env vault setting {key!r} (known: {', '.join(_ENV_CONFIG_KEYS)})", where)
            if value is None or key in _ENTITY_IGNORED_CONFIG:
                continue
            if key == "prefix":
                if not isinstance(value, str) or not _ENV_PREFIX_RE.match(value):
                    raise error(
                        f"invalid env variable prefix {value!r}: letters, digits, '_' and '-', not starting with a digit",
                        where,
                    )
            elif key == "base64_decode" and not isinstance(value, bool):
                raise error("must be true or false", where)
            settings[key] = value
        entities[prefix] = VaultEntity(prefix=prefix, name=name, config=settings, description=description)
    return entities


def looks_like_reference(value: Any) -> bool:
    """Whether a string is meant to be a vault reference (maybe a broken one)."""
    return isinstance(value, str) and (value.lstrip().startswith("{vault:") or "vault://" in value)


def is_reference(value: Any) -> bool:
    """Kong's test: `{vault://...}`."""
    return isinstance(value, str) and value.startswith("{vault://") and value.endswith("}")


def parse_reference(reference: str) -> VaultReference:
    """Parse `{vault://NAME/RESOURCE[/KEY][?CONFIG][#VERSION]}` as Kong does."""
    if not is_reference(reference):
        raise VaultError(
            f"not a valid vault reference: {reference!r} "
            "(expected '{vault://env/VARIABLE}' or '{vault://env/VARIABLE/field}')"
        )
    inner = reference[1:-1]
    try:
        url = urlsplit(inner)
    except ValueError as e:
        raise VaultError(f"vault reference is not a URL ({e}): {reference!r}") from None
    name = url.netloc
    if not name:
        raise VaultError(f"vault reference is missing the vault name: {reference!r}")
    path = url.path[1:] if url.path.startswith("/") else url.path
    if not path:
        raise VaultError(f"vault reference has an empty path: {reference!r}")
    version = None
    if url.fragment:
        if not url.fragment.isdigit():
            raise VaultError(f"vault reference has an invalid version {url.fragment!r}: {reference!r}")
        version = int(url.fragment)
    parts = path.split("/")
    key = None
    if len(parts) == 1:
        resource = unquote(parts[0])
    else:
        resource = unquote("/".join(parts[:-1]))
        if parts[-1]:
            key = unquote(parts[-1])
    if not resource:
        raise VaultError(f"vault reference has an invalid path: {reference!r}")
    config = dict(parse_qsl(url.query, keep_blank_values=True)) if url.query else None
    return VaultReference(name=name, resource=resource, key=key, version=version, config=config)


def _flag(value: str | None, what: str) -> bool:
    if value is None:
        return False
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise VaultError(f"{what} must be true or false, not {value!r}")


def env_variable_name(
    ref: VaultReference, environ: Mapping[str, str] | None = None, base: Mapping[str, Any] | None = None
) -> str:
    """The environment variable Kong's `env` vault reads for a reference.

    `base`: the vault's settings (a Vault entity's `config`); None: the
    built-in vault's, from `KONG_VAULT_ENV_PREFIX`. The reference's
    `?prefix=` overrides either."""
    environ = os.environ if environ is None else environ
    if base is None:
        base = {"prefix": environ["KONG_VAULT_ENV_PREFIX"]} if "KONG_VAULT_ENV_PREFIX" in environ else {}
    config = ref.config or {}
    prefix = config.get("prefix")
    if prefix is None:
        prefix = base.get("prefix")
    resource = (prefix or "") + ref.resource
    name = resource.replace("-", "_").upper()
    if ref.version == 2:
        name += "_PREVIOUS"
    return name


def _resolve_env(
    ref: VaultReference, reference: str, environ: Mapping[str, str], base: Mapping[str, Any] | None = None
) -> str:
    """`base`: a Vault entity's config; None: the built-in vault (KONG_VAULT_ENV_*)."""
    config = dict(ref.config or {})
    unknown = sorted(set(config) - set(_ENV_CONFIG_KEYS))
    if unknown:
        raise VaultError(
            f"unknown env vault option {unknown[0]!r} in {reference!r} (known: {', '.join(_ENV_CONFIG_KEYS)})"
        )
    if ref.version not in (None, 1, 2):
        raise VaultError(f"env vault supports versions 1 and 2 only, not {ref.version}: {reference!r}")
    variable = env_variable_name(ref, environ, base)
    value = environ.get(variable)
    if value is None:
        hint = ""
        if variable != ref.resource:
            hint = " (Kong's env vault upper-cases the name and maps '-' to '_')"
        raise VaultError(f"environment variable {variable} is not set{hint}, needed by {reference!r}")
    if "base64_decode" in config:
        decode = _flag(config["base64_decode"], "base64_decode")
    elif base is not None:
        decode = bool(base.get("base64_decode", False))
    else:
        decode = _flag(environ.get("KONG_VAULT_ENV_DECODE_BASE64"), "KONG_VAULT_ENV_DECODE_BASE64")
    if decode:
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise VaultError(f"environment variable {variable} is not valid base64 (UTF-8) text") from None
    if ref.key is None:
        return value
    try:
        document = json.loads(value)
    except ValueError:
        raise VaultError(
            f"environment variable {variable} is not JSON, so field {ref.key!r} cannot be read from it"
        ) from None
    if not isinstance(document, dict):
        raise VaultError(
            f"environment variable {variable} holds JSON {type(document).__name__}, "
            f"not an object, so field {ref.key!r} cannot be read from it"
        )
    if ref.key not in document:
        raise VaultError(f"field {ref.key!r} not found in the JSON value of environment variable {variable}")
    field_value = document[ref.key]
    if not isinstance(field_value, str):
        kind = "null" if field_value is None else type(field_value).__name__
        raise VaultError(f"field {ref.key!r} of environment variable {variable} is a {kind}, not a string")
    return field_value


def resolve_reference(
    reference: str,
    environ: Mapping[str, str] | None = None,
    vaults: Mapping[str, VaultEntity] | None = None,
) -> str:
    """Resolve one `{vault://...}` reference to its secret, or raise VaultError.

    `vaults`: the workflow's Vault entities by prefix (`parse_vault_entities`).
    As in Kong, a backend name (`env`) means the built-in vault; any other
    name is looked up among the entities."""
    environ = os.environ if environ is None else environ
    ref = parse_reference(reference)
    if ref.name in SUPPORTED_VAULTS:
        return _resolve_env(ref, reference, environ)
    if ref.name in KNOWN_BACKENDS:
        raise VaultError(
            f"unsupported vault {ref.name!r} in {reference!r}: only the built-in environment "
            "variable vault ('{vault://env/VARIABLE}') is implemented; the hcv, aws, gcp, "
            "azure and conjur backends are not"
        )
    entity = (vaults or {}).get(ref.name)
    if entity is None:
        declared = ", ".join(repr(p) for p in sorted(vaults or {})) or "none"
        raise VaultError(
            f"unknown vault {ref.name!r} in {reference!r}: it is neither the built-in 'env' vault nor the "
            f"prefix of a Vault entity in the workflow's top-level 'vaults' list (declared prefixes: {declared})"
        )
    if entity.name not in SUPPORTED_VAULTS:  # parse_vault_entities rejects these already
        raise VaultError(f"vault {ref.name!r} uses the unsupported backend {entity.name!r}")
    return _resolve_env(ref, reference, environ, entity.config)


def resolve_value(
    value: str,
    environ: Mapping[str, str] | None = None,
    vaults: Mapping[str, VaultEntity] | None = None,
) -> str:
    """A referenceable field: resolve a reference, keep a literal as is."""
    if looks_like_reference(value):
        return resolve_reference(value.strip(), environ, vaults)
    return value


@register
class VaultResource(Resource):
    """`resources.vault`: NAME -> reference. `.secrets` holds the resolved values."""

    key = "vault"
    schema: ClassVar[Mapping[str, Any]] = {
        "type": ["object", "null"],
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 4095},
        "minProperties": 1,  # Kong's limits on the vault map
        "maxProperties": 64,
    }

    def __init__(
        self,
        config: Any,
        source: str,
        environ: Mapping[str, str] | None = None,
        vaults: Mapping[str, VaultEntity] | None = None,
    ) -> None:
        super().__init__(config, source)
        self.vaults: Mapping[str, VaultEntity] = dict(vaults or {})
        self.secrets: dict[str, str] = {}
        if config is None:
            return
        if not isinstance(config, Mapping):
            raise self.config_error(
                f"must be a mapping of secret names to vault references, not {type(config).__name__}"
            )
        for name, value in config.items():
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise self.config_error(
                    f"invalid secret name {name!r}: 1 to 255 characters, no '.' or whitespace "
                    "(it is used as the port in 'vault.NAME')",
                    field=str(name),
                )
            if not isinstance(value, str) or not value:
                raise self.config_error(
                    "must be a non-empty string: a vault reference like '{vault://env/VARIABLE}'",
                    field=name,
                )
            if len(value) > 4095:
                raise self.config_error("is longer than 4095 characters", field=name)
            try:
                self.secrets[name] = resolve_value(value, environ, self.vaults)
            except VaultError as e:
                raise self.config_error(str(e), field=name) from None

    @classmethod
    def build(cls, config: Any, source: str, info: Any) -> VaultResource:
        return cls(config, source, vaults=vault_entities(info))

    def __repr__(self) -> str:
        # Never show the values.
        return f"<VaultResource {sorted(self.secrets)}>"


def vault_entities(info: Any) -> Mapping[str, VaultEntity]:
    """The Vault entities the loader put in `WorkflowInfo.extra["vaults"]`."""
    extra = getattr(info, "extra", None) or {}
    return extra.get("vaults") or {}
