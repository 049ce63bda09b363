"""`jwt_verify`: check a JWT's signature and claims; output its claims.

The algorithm is bound to the key type (see `mitmdatakit.jwtkit`): an HS*
token is never checked against an asymmetric key, `alg: none` never passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import jwtkit
from ..context import NodeContext
from ..errors import NodeError
from ..ports import Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register

_STRING_LIST = {"type": "array", "items": {"type": "string"}}


@register
class JwtVerifyNode(Node):
    type_name = "jwt_verify"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "allowed_algorithms": {
                "type": "array",
                "items": {"type": "string", "enum": list(jwtkit.ALGORITHMS)},
            },
            "issuers": _STRING_LIST,
            "audiences": _STRING_LIST,
            "required_claims": _STRING_LIST,
            "leeway": {"type": "integer"},  # Kong allows any integer; negative only narrows
            "validate_exp": {"type": "boolean"},
            "validate_nbf": {"type": "boolean"},
        },
        "required": [],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.allowed_algorithms = self._string_list("allowed_algorithms")
        unknown = jwtkit.unknown_algorithms(self.allowed_algorithms)
        if unknown:
            raise self.config_error(
                f"unknown algorithm {unknown[0]!r} (expected any of {', '.join(jwtkit.ALGORITHMS)})",
                field="allowed_algorithms",
            )
        self.issuers = self._string_list("issuers")
        self.audiences = self._string_list("audiences")
        self.required_claims = self._string_list("required_claims")
        leeway = self.attr("leeway", 0)
        if not isinstance(leeway, int) or isinstance(leeway, bool):
            raise self.config_error("'leeway' must be an integer (seconds)", field="leeway")
        self.leeway = leeway
        self.validate_exp = self._bool("validate_exp")
        self.validate_nbf = self._bool("validate_nbf")

    def _string_list(self, key: str) -> tuple[str, ...]:
        value = self.attr(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.config_error(f"'{key}' must be a list of strings", field=key)
        return tuple(value)

    def _bool(self, key: str) -> bool:
        value = self.attr(key, True)
        if not isinstance(value, bool):
            raise self.config_error(f"'{key}' must be a boolean", field=key)
        return value

    def sealed_inputs(self) -> frozenset[str]:
        return frozenset({"key"})  # the claims and the signature do not reveal the key

    def input_ports(self) -> Ports:
        return Ports(named={"token": PortType.STRING, "key": PortType.ANY})

    def output_ports(self) -> Ports:
        return Ports(named={"claims": PortType.MAP, "header": PortType.MAP})

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        token = inputs.get("token")
        if token is None:
            raise NodeError("jwt_verify: no token (the 'token' input is missing or null)")
        key = inputs.get("key")
        if key is None:
            raise NodeError("jwt_verify: no key (the 'key' input is missing or null)")
        try:
            header, claims = jwtkit.verify(
                token,
                key,
                allowed_algorithms=self.allowed_algorithms,
                issuers=self.issuers,
                audiences=self.audiences,
                required_claims=self.required_claims,
                leeway=self.leeway,
                validate_exp=self.validate_exp,
                validate_nbf=self.validate_nbf,
            )
        except jwtkit.JWTError as exc:
            raise NodeError(f"JWT verification failed: {exc}") from None
        return {"claims": claims, "header": header}
