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
Everything else that cannot be resolved (bad reference syntax, a vault other
than `env`, a missing variable or field, a value that is not JSON when a
field is asked for) is a configuration error naming the entry.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import Resource, register

__all__ = ["VaultError", "VaultReference", "VaultResource", "is_reference", "parse_reference", "resolve_reference"]

SUPPORTED_VAULTS = ("env",)
"""Vault backends this project implements (Kong also has hcv, aws, gcp, azure, conjur...)."""

_ENV_CONFIG_KEYS = ("prefix", "base64_decode")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_NAME_RE = re.compile(r"^[^.\s]{1,255}$")


class VaultError(ValueError):
    """A reference that cannot be parsed or resolved (a config-time error)."""


@dataclass(frozen=True)
class VaultReference:
    name: str  # vault (strategy) name: `env`
    resource: str  # what to look up: the variable name, before mapping
    key: str | None = None  # field of a JSON value
    version: int | None = None
    config: Mapping[str, str] | None = None  # `?prefix=...&base64_decode=...`


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


def env_variable_name(ref: VaultReference, environ: Mapping[str, str] | None = None) -> str:
    """The environment variable Kong's `env` vault reads for a reference."""
    environ = os.environ if environ is None else environ
    config = ref.config or {}
    prefix = config.get("prefix")
    if prefix is None:
        prefix = environ.get("KONG_VAULT_ENV_PREFIX")
    resource = (prefix or "") + ref.resource
    name = resource.replace("-", "_").upper()
    if ref.version == 2:
        name += "_PREVIOUS"
    return name


def _resolve_env(ref: VaultReference, reference: str, environ: Mapping[str, str]) -> str:
    config = dict(ref.config or {})
    unknown = sorted(set(config) - set(_ENV_CONFIG_KEYS))
    if unknown:
        raise VaultError(
            f"unknown env vault option {unknown[0]!r} in {reference!r} (known: {', '.join(_ENV_CONFIG_KEYS)})"
        )
    if ref.version not in (None, 1, 2):
        raise VaultError(f"env vault supports versions 1 and 2 only, not {ref.version}: {reference!r}")
    variable = env_variable_name(ref, environ)
    value = environ.get(variable)
    if value is None:
        hint = ""
        if variable != ref.resource:
            hint = " (Kong's env vault upper-cases the name and maps '-' to '_')"
        raise VaultError(f"environment variable {variable} is not set{hint}, needed by {reference!r}")
    if "base64_decode" in config:
        decode = _flag(config["base64_decode"], "base64_decode")
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


def resolve_reference(reference: str, environ: Mapping[str, str] | None = None) -> str:
    """Resolve one `{vault://...}` reference to its secret, or raise VaultError."""
    environ = os.environ if environ is None else environ
    ref = parse_reference(reference)
    if ref.name not in SUPPORTED_VAULTS:
        raise VaultError(
            f"unsupported vault {ref.name!r} in {reference!r}: only the built-in environment "
            "variable vault ('{vault://env/VARIABLE}') is implemented; Kong vault entities "
            "and the hcv, aws, gcp, azure and conjur backends are not"
        )
    return _resolve_env(ref, reference, environ)


def resolve_value(value: str, environ: Mapping[str, str] | None = None) -> str:
    """A referenceable field: resolve a reference, keep a literal as is."""
    if looks_like_reference(value):
        return resolve_reference(value.strip(), environ)
    return value


@register
class VaultResource(Resource):
    """`resources.vault`: NAME -> reference. `.secrets` holds the resolved values."""

    key = "vault"
    schema = {
        "type": ["object", "null"],
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 4095},
    }

    def __init__(self, config: Any, source: str, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(config, source)
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
                self.secrets[name] = resolve_value(value, environ)
            except VaultError as e:
                raise self.config_error(str(e), field=name) from None

    def __repr__(self) -> str:
        # Never show the values.
        return f"<VaultResource {sorted(self.secrets)}>"
