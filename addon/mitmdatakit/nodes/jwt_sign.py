"""`jwt_sign`: build a JWT from claims and sign it (HMAC, RSA, EC or EdDSA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import jwtkit
from ..context import NodeContext
from ..errors import NodeError
from ..ports import Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register


@register
class JwtSignNode(Node):
    type_name = "jwt_sign"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "algorithm": {"type": "string", "enum": list(jwtkit.ALGORITHMS)},
            "expires_in": {"type": "integer"},  # Kong allows any integer
            "not_before": {"type": "integer"},
            "kid": {"type": "string"},
            "typ": {"type": "string"},
            "static_claims": {"type": "object", "additionalProperties": {"type": "string"}},  # as Kong: string values
        },
        "required": ["algorithm"],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        algorithm = self.attr("algorithm")
        if algorithm is None:
            raise self.config_error("'algorithm' is required", field="algorithm")
        if algorithm not in jwtkit.ALGORITHMS:
            raise self.config_error(
                f"unknown algorithm {algorithm!r} (expected one of {', '.join(jwtkit.ALGORITHMS)})",
                field="algorithm",
            )
        self.algorithm: str = algorithm
        self.expires_in = self._int_attr("expires_in", 300)
        self.not_before = self._int_attr("not_before", 0)
        self.kid = self.attr("kid")
        if self.kid is not None and not isinstance(self.kid, str):
            raise self.config_error("'kid' must be a string", field="kid")
        self.typ = self.attr("typ", "JWT")
        if not isinstance(self.typ, str):
            raise self.config_error("'typ' must be a string", field="typ")
        static_claims = self.attr("static_claims", {})
        if not isinstance(static_claims, Mapping):
            raise self.config_error("'static_claims' must be a mapping", field="static_claims")
        for claim, value in static_claims.items():
            if not isinstance(value, str):  # Kong's schema: a map of strings
                raise self.config_error(
                    f"static claim {claim!r} must be a string (dynamic values go through the 'claims' input)",
                    field="static_claims",
                )
        self.static_claims = dict(static_claims)

    def _int_attr(self, key: str, default: int, minimum: int | None = None) -> int:
        value = self.attr(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.config_error(f"'{key}' must be an integer (seconds)", field=key)
        if minimum is not None and value < minimum:
            raise self.config_error(f"'{key}' must be at least {minimum}", field=key)
        return value

    def summary(self) -> str:
        algorithm = self.spec.attrs.get("algorithm")
        return str(algorithm) if algorithm else ""

    def sealed_inputs(self) -> frozenset[str]:
        return frozenset({"key"})  # the claims and the signature do not reveal the key

    def input_ports(self) -> Ports:
        return Ports(named={"claims": PortType.MAP, "key": PortType.ANY})

    def output_ports(self) -> Ports:
        return Ports(
            named={"token": PortType.STRING, "claims": PortType.MAP, "header": PortType.MAP}
        )

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        key = inputs.get("key")
        if key is None:
            raise NodeError("jwt_sign: no signing key (the 'key' input is missing or null)")
        try:
            token, claims, header = jwtkit.sign(
                inputs.get("claims"),
                key,
                self.algorithm,
                static_claims=self.static_claims,
                expires_in=self.expires_in,
                not_before=self.not_before,
                kid=self.kid,
                typ=self.typ,
            )
        except jwtkit.JWTError as exc:
            raise NodeError(f"cannot sign JWT: {exc}") from None
        return {"token": token, "claims": claims, "header": header}
