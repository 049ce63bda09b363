"""Which values of a run derive from a secret, decided on the graph.

A node's output ports are secret when the node declares them so
(`secret_outputs()`: the vault) or when any of its inputs is fed,
directly or through other nodes, from a secret port. Conservative: one
secret input makes every output of the node secret (a jq filter may mix
anything into anything), except through the inputs a node declares sealed
(`sealed_inputs()`: a JWT key, which cannot be read back from the claims
or the signature). Only the inputs that are fed from a secret are
marked on the input side, so the clean inputs of a run stay visible.

Taint follows connections only. Values that travel outside the graph
(`kong.ctx.*` properties, the cache) are left to the string redactor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connections import Conn


class _AllPorts:
    """Every port (a port set that contains any name)."""

    def __contains__(self, port: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALL_PORTS"


ALL_PORTS: Any = _AllPorts()
NO_PORTS: frozenset[str] = frozenset()


def _from_secret(c: Conn, secret_out: Sequence[Any]) -> bool:
    ports = secret_out[c.src]
    if not ports:
        return False
    if c.src_port is None:  # the node-wise value holds every port
        return True
    return c.src_port in ports


def secret_ports(nodes: Sequence[Any], inputs: Sequence[Sequence[Conn]], order: Sequence[int]) -> tuple[list[Any], list[Any]]:
    """(secret output ports, secret input ports) per node index."""
    n = len(nodes)
    secret_out: list[Any] = [NO_PORTS] * n
    secret_in: list[Any] = [NO_PORTS] * n
    for i in order:
        tainted: set[str] = set()
        everything = False
        for c in inputs[i]:
            if _from_secret(c, secret_out):
                if c.dst_port is None:
                    everything = True  # spread over the target's ports
                else:
                    tainted.add(c.dst_port)
        if everything:
            secret_in[i] = ALL_PORTS
        elif tainted:
            secret_in[i] = frozenset(tainted)
        if everything or tainted - nodes[i].sealed_inputs():
            secret_out[i] = ALL_PORTS
        else:
            secret_out[i] = frozenset(nodes[i].secret_outputs())
    return secret_out, secret_in


# Derived strings shorter than this are not searched for in free text
# (messages): redacting every "ab" would wreck messages, and such short
# values carry little of a secret. Vault values themselves are always
# redacted, whatever their length.
MIN_DERIVED_LENGTH = 4


def strings(value: Any) -> Iterator[str]:
    """The string leaves of a value (not its keys: names like `body`)."""
    if isinstance(value, str):
        if len(value) >= MIN_DERIVED_LENGTH:
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)



@dataclass(frozen=True)
class SecretWrite:
    """A message-writing node fed from a secret: per input port, the keys
    fed from a secret (None: the whole port)."""

    node: int
    writes: str  # "request" or "response"
    ports: Mapping[str, frozenset[str] | None]


def secret_writes(nodes: Sequence[Any], inputs: Sequence[Sequence[Conn]], secret_out: Sequence[Any]) -> list[SecretWrite]:
    """At load: the message writers with an input fed from a secret."""
    found = []
    for i, node in enumerate(nodes):
        if node.writes is None:
            continue
        ports: dict[str, frozenset[str] | None] = {}
        for c in inputs[i]:
            if not _from_secret(c, secret_out):
                continue
            targets = [c.dst_port] if c.dst_port is not None else list(node.input_ports().named)
            for port in targets:
                if c.dst_key is None or c.dst_port is None:
                    ports[port] = None
                elif port not in ports or ports[port] is not None:
                    ports[port] = frozenset({*(ports.get(port) or ()), c.dst_key.lower()})
        if ports:
            found.append(SecretWrite(i, node.writes, ports))
    return found


__all__ = ["ALL_PORTS", "MIN_DERIVED_LENGTH", "NO_PORTS", "SecretWrite", "secret_ports", "secret_writes", "strings"]
