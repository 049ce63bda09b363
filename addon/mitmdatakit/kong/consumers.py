"""Consumers and consumer groups of a decK file, for
`kong.client.consumer_groups`: the groups of the authenticated consumer
(PDK `kong.client.get_consumer_groups()`: the group entities, nil when none
were authenticated; Kong sorts its consumer-group mapping by group name).

decK writes membership either way round: `consumers[].groups: [{name}]` or
`consumer_groups[].consumers: [{username}]`; both count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .entities import entity_id

_IDENTITY = ("id", "username", "custom_id")
_NESTED = ("consumers", "plugins")  # lists inside a group entity, not part of it


def _ref(value: Any, keys: Sequence[str]) -> set[str]:
    """The names a reference may be matched by: a plain string, or the
    given keys of an object."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, Mapping):
        return {str(value[k]) for k in keys if value.get(k) is not None}
    return set()


def same_consumer(entity: Mapping[str, Any], consumer: Mapping[str, Any]) -> bool:
    """A decK consumer is the authenticated one when an identity field agrees."""
    return any(consumer.get(k) is not None and entity.get(k) is not None and str(entity[k]) == str(consumer[k])
               for k in _IDENTITY)


class ConsumerGroups:
    def __init__(self, consumers: Sequence[Mapping[str, Any]], groups: Sequence[Mapping[str, Any]]) -> None:
        self.consumers = list(consumers)
        self.groups = [
            {**{k: v for k, v in g.items() if k not in _NESTED}, "id": entity_id("consumer_group", g, str(i))}
            for i, g in enumerate(groups)
        ]
        self._members = [g.get("consumers") or [] for g in groups]

    def __bool__(self) -> bool:
        return bool(self.groups)

    def groups_of(self, consumer: Any) -> list[dict[str, Any]] | None:
        if not isinstance(consumer, Mapping) or not self.groups:
            return None
        mine = [c for c in self.consumers if same_consumer(c, consumer)] or [consumer]
        named: set[str] = set()
        for c in mine:
            for ref in c.get("groups") or []:
                named |= _ref(ref, ("name", "id"))
        found = []
        for group, members in zip(self.groups, self._members, strict=True):
            listed = any(same_consumer(m, consumer) if isinstance(m, Mapping) else _ref(m, ()) & _ref(consumer, _IDENTITY)
                         for m in members)
            if listed or {group.get("name"), group["id"]} & named:
                found.append(group)
        return sorted(found, key=lambda g: str(g.get("name") or g["id"])) or None
