"""Parsing workflow files within bounds.

A workflow file is untrusted input to a long-running proxy, so parsing it
must end quickly with a value or a ConfigError naming the file:

- YAML duplicate keys are errors (a duplicate is a mistake);
- nesting deeper than `MAX_NESTING` is an error, in YAML (checked while
  composing, before Python's recursion limit is near) and in JSON (checked
  on the parsed value);
- YAML aliases may add at most `MAX_ALIAS_EXPANSION` nodes to a document:
  a "billion laughs" file of a few hundred bytes expands to billions of
  values, which validation, error messages and the runtime would all walk;
- a recursive alias (`&a [*a]`) is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

from .errors import AliasBombError, ConfigError

MAX_NESTING = 100
MAX_ALIAS_EXPANSION = 100_000
MAX_MESSAGE_CHARS = 400  # parser messages quote the input; keep log lines readable


class _TooDeep(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader with the bounds above and without silent duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # PyYAML composes recursively: stop long before the recursion limit
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        check_expansion(node)
        return super().construct_document(node)


def _construct_mapping(loader: _BoundedLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _is_container(node: yaml.Node) -> bool:
    return isinstance(node, (yaml.SequenceNode, yaml.MappingNode))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_expansion(root: yaml.Node) -> None:
    """Raise AliasBombError if the composed document, with every alias
    expanded, would hold more than MAX_ALIAS_EXPANSION nodes beyond the ones
    written, nest deeper than MAX_NESTING, or contain itself.

    Aliases make the composed nodes a graph that shares subtrees; the sizes
    and heights are computed once per distinct node (iteratively: no
    recursion), so checking a bomb costs as much as reading it.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0) if _is_container(node) else 0
            on_path.discard(key)
            continue
        if key in size:
            continue
        if key in on_path:
            raise AliasBombError("a YAML alias refers to a node that contains it (recursive alias)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)
    expanded = size[id(root)] - len(size)
    if expanded > MAX_ALIAS_EXPANSION:
        raise AliasBombError(f"YAML aliases expand the document by more than {MAX_ALIAS_EXPANSION:,} nodes")
    if height[id(root)] > MAX_NESTING:
        raise _TooDeep


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests more than `limit` lists and
    objects deep (iteratively)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def shorten(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + " [...]"


def parse_text(text: str, source: str, is_json: bool = False) -> Any:
    """The document in `text`, or a ConfigError naming `source`."""
    kind = "JSON" if is_json else "YAML"
    too_deep = ConfigError(f"invalid {kind}: nesting deeper than {MAX_NESTING}", file=source)
    try:
        if is_json:
            doc = json.loads(text)
            if json_depth_exceeds(doc, MAX_NESTING):
                raise too_deep
            return doc
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except (_TooDeep, RecursionError):
        # RecursionError: json's C parser stops at Python's recursion limit,
        # which is far above MAX_NESTING
        raise too_deep from None
    except AliasBombError as e:
        raise ConfigError(f"invalid YAML: {e}", file=source) from None
    except (ValueError, TypeError, yaml.YAMLError) as e:  # TypeError: unhashable YAML keys
        raise ConfigError(f"invalid {kind}: {shorten(str(e))}", file=source) from None
