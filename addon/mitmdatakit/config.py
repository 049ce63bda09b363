"""Loading workflow files: shapes, schema validation, nodes, plan.

`load_path(PATH)` takes a file or a directory and returns the workflows in
order, or raises a ConfigError that names the file, node and field (the
first problem: the addon needs no more). `check_file(PATH)` collects every
error it can find in a file instead (`datakit validate`): all schema
violations, every node that cannot be built; the graph is checked (first
error) when all nodes were built.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, overload

import jsonschema

from .errors import ConfigError
from .graph import build_plan
from .kong import deck_env
from .kong.declarative import FORMAT_KEY, is_declarative, load_declarative
from .nodes.base import Node, NodeSpec, WorkflowInfo, implicit_names, node_types
from .parsing import parse_text, shorten
from .resources import resource_types
from .resources.vault import parse_vault_entities
from .schema import EXTENSION_KEYS, KONG_ENTITY_KEYS, build_schema, node_schema
from .schema_errors import describe
from .trace import Redactor
from .workflow import Match, Workflow

logger = logging.getLogger("mitmdatakit")

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_SIZE = 64 * 1024 * 1024
"""Largest workflow file read: a data dump that ended up in the config
directory as `*.json` is refused, not read whole into memory."""
READ_CHUNK = 1 << 20
CONNECTION_KEYS = ("input", "inputs", "output", "outputs")


@dataclass(frozen=True)
class Skipped:
    """A directory entry with a workflow suffix that is not loaded, and why."""

    name: str
    reason: str


def workflow_entries(path: str | os.PathLike[str]) -> tuple[list[Path], list[Skipped]]:
    """The files a `datakit_config` value names (the file, or a directory's
    *.yaml, *.yml and *.json in name order), and the directory entries with
    those suffixes that are skipped: dangling symlinks, directories, FIFOs,
    sockets and devices (reading a FIFO would block forever)."""
    p = Path(path).expanduser()
    if p.is_dir():
        files, skipped = [], []
        for f in sorted((f for f in p.iterdir() if f.suffix.lower() in SUFFIXES), key=lambda f: f.name):
            reason = _not_a_file(f)
            if reason is None:
                files.append(f)
            else:
                skipped.append(Skipped(f.name, reason))
        return files, skipped
    reason = _not_a_file(p)
    if reason is None:
        return [p], []
    if reason == "no such file or directory":
        raise ConfigError(f"no such file or directory: {str(p)!r}", file=str(p))
    raise ConfigError(f"cannot load {str(p)!r}: {reason}", file=str(p))


def _not_a_file(p: Path) -> str | None:
    """Why `p` is not a regular file to load, or None if it is one."""
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        return "dangling symbolic link" if p.is_symlink() else "no such file or directory"
    except OSError as e:
        return f"cannot stat: {e.strerror or e}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    return "not a regular file"


def workflow_files(path: str | os.PathLike[str]) -> list[Path]:
    return workflow_entries(path)[0]


def load_path(path: str | os.PathLike[str]) -> list[Workflow]:
    return [wf for f in workflow_files(path) for wf in load_file_workflows(f)]


def load_file_workflows(path: str | os.PathLike[str]) -> list[Workflow]:
    """The workflows of one file: one, or a Kong declarative file's datakit
    plugins (kong/declarative.py), each placed by that file's router."""
    p = Path(path)
    source = str(p)
    doc = _parse_file_text(_read_file(p), p)
    if is_declarative(doc):
        return load_declarative(doc, source, lambda plugin, name: load_document(plugin, source=source, default_name=name)).workflows
    return [load_document(doc, source=source, default_name=p.stem)]


def load_file(path: str | os.PathLike[str]) -> Workflow:
    p = Path(path)
    workflows = load_file_workflows(p)
    if len(workflows) != 1:
        raise ConfigError(f"a Kong declarative file with {len(workflows)} datakit plugins, not one workflow", file=str(p))
    return workflows[0]


def _parse_file_text(text: str, p: Path) -> Any:
    """The document in a workflow file. A decK file's `${{ env "DECK_..." }}`
    placeholders are filled in first, as decK does (kong/deck_env.py); a
    workflow file's text is taken as written."""
    source, is_json = str(p), p.suffix.lower() == ".json"
    if not deck_env.has_placeholders(text) or FORMAT_KEY not in text:
        return parse_text(text, source, is_json)
    try:  # decK renders before parsing: a JSON file may only parse once rendered
        raw = parse_text(text, source, is_json)
    except ConfigError:
        raw = None
    if raw is not None and not is_declarative(raw):
        return raw
    return parse_text(deck_env.render(text, source), source, is_json)


def _read_file(p: Path) -> str:
    try:
        return _read_regular_file(p)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read workflow file: {e}", file=str(p)) from None


def check_file(path: str | os.PathLike[str]) -> tuple[list[Workflow] | None, list[ConfigError]]:
    """The workflows in a file, or None and every error found in it (a Kong
    declarative file: its first error)."""
    p = Path(path)
    source = str(p)
    errors: list[ConfigError] = []
    try:
        doc = _parse_file_text(_read_regular_file(p), p)
        if is_declarative(doc):
            return load_file_workflows(p), []
        workflow = load_document(doc, source=source, default_name=p.stem, errors=errors)
    except (OSError, UnicodeDecodeError) as e:
        return None, [ConfigError(f"cannot read workflow file: {e}", file=source)]
    except ConfigError as e:  # a problem after which nothing else can be checked
        errors.append(e.located(source))
        workflow = None
    return ([workflow], []) if workflow is not None and not errors else (None, errors)


def _report(error: ConfigError, errors: list[ConfigError] | None) -> None:
    """Raise the error (loading), or note it and go on (checking)."""
    if errors is None:
        raise error
    errors.append(error)


def _read_regular_file(p: Path) -> str:
    # O_NONBLOCK: a file swapped for a FIFO since it was listed must not
    # block the loader; an unreadable file fails the load (it is not skipped:
    # skipping a guard workflow would switch the guard off)
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{str(p)!r} is not a regular file")
        # in chunks: `read(MAX_FILE_SIZE + 1)` allocates that much for any file
        chunks, total = [], 0
        while chunk := f.read(READ_CHUNK):
            total += len(chunk)
            if total > MAX_FILE_SIZE:
                raise OSError(f"{str(p)!r} is larger than {MAX_FILE_SIZE} bytes (MAX_FILE_SIZE), not a workflow file")
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8")


def load_text(text: str, source: str = "<memory>", default_name: str = "workflow", is_json: bool = False) -> Workflow:
    return load_document(parse_text(text, source, is_json), source=source, default_name=default_name)


@overload
def load_document(doc: Any, source: str = ..., default_name: str = ..., *, errors: None = None) -> Workflow: ...


@overload
def load_document(
    doc: Any, source: str = ..., default_name: str = ..., *, errors: list[ConfigError],
) -> Workflow | None: ...


def load_document(
    doc: Any, source: str = "<memory>", default_name: str = "workflow", *, errors: list[ConfigError] | None = None,
) -> Workflow | None:
    """Build a workflow from a parsed document in any of the three shapes.

    With `errors` (a list), errors that leave the rest checkable are added
    to it and the check goes on; then the result is None if any was found."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"a workflow must be a mapping with 'nodes' or 'config', got {_kind(doc)}", file=source)
    doc = dict(doc)
    if "config" in doc:
        outer_keys = {**KONG_ENTITY_KEYS, **EXTENSION_KEYS}
        _check_keys(doc, outer_keys, source, "")
        config = doc["config"]
        if not isinstance(config, Mapping):
            raise ConfigError(f"'config' must be a mapping, got {_kind(config)}", file=source, field="config")
        prefix = "config."
        enabled = doc.get("enabled")
        name = doc.get("instance_name") or default_name
    elif "nodes" in doc:
        config = {k: v for k, v in doc.items() if k not in EXTENSION_KEYS}
        prefix = ""
        enabled = True
        name = default_name
    else:
        raise ConfigError("a workflow needs 'nodes' (a Datakit config) or 'config' (a Kong plugin entity)", file=source)

    found = len(errors or ())
    _validate_top(doc, config, source, prefix, errors)
    nodes_raw = config.get("nodes")
    if errors and len(errors) > found and not isinstance(nodes_raw, list):
        return None  # no nodes to check

    resources: dict[str, Any] = {}  # filled below, in `resources` order
    info = WorkflowInfo(
        name=name,
        source=source,
        resources=resources,
        raw_resources=dict(config.get("resources") or {}),
        upstreams=dict(doc.get("upstreams") or {}),
        extra={"vaults": parse_vault_entities(doc.get("vaults"), source)},
    )
    for key, raw in info.raw_resources.items():
        if raw is None:
            continue
        cls = resource_types()[key]
        try:
            resources[key] = cls.build(raw, source, info)
        except ConfigError as e:
            _report(e.located(source), errors)

    try:
        match = Match.build(doc.get("match"), source)
    except ConfigError as e:
        _report(e.located(source), errors)
    specs, declared, connections = _build_nodes(nodes_raw, source, info, prefix, errors)
    if errors:
        return None  # a graph of the nodes that were built would report ghosts
    try:
        plan = build_plan(specs, connections, declared, info)
    except ConfigError as e:
        _report(e.located(source), errors)
        return None

    # resolved secrets (vault) are redacted wherever they would show
    secrets = [s for r in info.resources.values() for s in (getattr(r, "secrets", None) or {}).values()]
    return Workflow(
        name=name,
        source=source,
        debug=bool(config.get("debug") or False),
        enabled=enabled is not False,
        match=match,
        plan=plan,
        info=info,
        secrets=secrets,
        redactor=Redactor(secrets),
    )


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), type(value).__name__)


def _check_keys(doc: Mapping[str, Any], allowed: Mapping[str, Any], source: str, prefix: str) -> None:
    for key in doc:
        if key != "config" and key not in allowed:
            raise ConfigError(f"unknown attribute {key!r}", file=source, field=f"{prefix}{key}")


def _validate_top(
    doc: Mapping[str, Any], config: Mapping[str, Any], source: str, prefix: str, errors: list[ConfigError] | None,
) -> None:
    """Everything above the node level, with the shipped schema's rules."""
    defs = build_schema()["$defs"]
    outer = defs["plugin"] if prefix else defs["bare"]
    top_schema = {**outer, "properties": {k: v for k, v in outer["properties"].items() if k not in ("config", "nodes")}}
    top_schema.pop("required", None)
    _schema_check(top_schema, {k: v for k, v in doc.items() if k not in ("config", "nodes")}, source, "", errors)
    cfg_schema = defs["config"]
    # the nodes themselves are checked one by one later, with their index
    nodes_count = {k: v for k, v in cfg_schema["properties"]["nodes"].items() if k != "items"}
    nodes_free = {**cfg_schema, "properties": {**cfg_schema["properties"], "nodes": nodes_count}}
    _schema_check(nodes_free, config, source, prefix, errors)


def _schema_check(
    schema: Mapping[str, Any], value: Any, source: str, prefix: str, errors: list[ConfigError] | None, **where: Any,
) -> bool:
    """Check `value` against `schema`; raise the most relevant violation, or
    (checking) add every violation, the most relevant first. Whether it passed."""
    validator = jsonschema.Draft202012Validator(schema)
    found = sorted(validator.iter_errors(value), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not found:
        return True
    best = jsonschema.exceptions.best_match(found)
    if errors is None:
        raise _schema_error(best, source, prefix, where)
    seen: set[str] = set()
    for error in [best, *(e for e in found if e is not best)]:
        located = _schema_error(error, source, prefix, where)
        if str(located) not in seen:  # one message per field and problem
            seen.add(str(located))
            errors.append(located)
    return False


def _schema_error(error: jsonschema.ValidationError, source: str, prefix: str, where: Mapping[str, Any]) -> ConfigError:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # an object's check: its instance and schema are mappings
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        properties = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = sorted(str(k) for k in set(instance) - set(properties))
        if extra:
            path.append(extra[0])
            known = ", ".join(sorted(properties))
            message = f"unknown attribute {extra[0]!r}" + (f" (known: {known})" if known else "")
        else:
            message = error.message
    elif error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else None
        if missing:
            path.append(missing)
            message = "required attribute is missing"
        else:
            message = error.message
    elif error.validator == "pattern":
        if path and path[0] in ("input", "output", "inputs", "outputs"):
            message = f"invalid connection label {error.instance!r} (expected NODE, NODE.PORT or NODE.PORT.KEY)"
        elif path == ["name"]:
            message = f"invalid name {error.instance!r} (letters, digits, '_' and '-' only)"
        else:
            message = describe(error)
    else:
        message = describe(error)
    return ConfigError(shorten(message), file=source, field=prefix + ".".join(path) if path else (prefix.rstrip(".") or None), **where)


class _Where(TypedDict, total=False):
    """Which node an error is about: ConfigError's location arguments."""

    node: str | None
    index: int
    node_type: str


def _strip_nulls(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if v is not None}


def _build_nodes(
    nodes_raw: Sequence[Any], source: str, info: WorkflowInfo, prefix: str, errors: list[ConfigError] | None,
) -> tuple[list[NodeSpec], list[Node], list[dict[str, Any]]]:
    """The nodes, built; raises the first error, or (checking) notes each
    node's errors and goes on with the next node."""
    specs: list[NodeSpec] = []
    declared: list[Node] = []
    connections: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(nodes_raw, start=1):
        try:
            built = _build_node(number, raw, source, info, prefix, seen, errors)
        except ConfigError as e:
            _report(e, errors)
            continue
        if built is not None:
            spec, node, conns = built
            specs.append(spec)
            declared.append(node)
            connections.append(conns)
    return specs, declared, connections


def _report_exclusive(raw: Mapping[str, Any], source: str, where: _Where, errors: list[ConfigError] | None) -> None:
    """`input`/`inputs` and `output`/`outputs` together: raise, or (checking)
    note it beside the node's schema errors, whatever their values' types."""
    for a, b in (("input", "inputs"), ("output", "outputs")):
        if a in raw and b in raw:
            _report(ConfigError(f"'{a}' and '{b}' are mutually exclusive", file=source, field=b, **where), errors)


def _build_node(
    number: int, raw: Any, source: str, info: WorkflowInfo, prefix: str, seen: dict[str, int], errors: list[ConfigError] | None,
) -> tuple[NodeSpec, Node, dict[str, Any]] | None:
    types = node_types()
    # nodes are numbered from 1, as Kong's messages say "node #1"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a node must be a mapping, got {_kind(raw)}", file=source, index=number, field=f"{prefix}nodes")
    raw = _strip_nulls(raw)
    name = raw.get("name")
    node_type = raw.get("type")
    where: _Where = {"node": name if isinstance(name, str) else None, "index": number}
    if not isinstance(name, str):
        missing = ConfigError("required attribute is missing" if name is None else "must be a string", file=source, field="name", **where)
        # (checking) Kong reports every field error at once: the node's other
        # errors too, when its type says which attributes it has
        cls = types.get(node_type) if isinstance(node_type, str) else None
        if errors is None or cls is None or cls.implicit:
            raise missing
        where["node_type"] = node_type
        if _schema_check(node_schema(node_type), raw, source, "", errors, **where):
            raise missing
        _report_exclusive(raw, source, where, errors)
        return None
    if not isinstance(node_type, str):
        raise ConfigError("required attribute is missing" if node_type is None else "must be a string", file=source, field="type", **where)
    cls = types.get(node_type)
    if cls is None or cls.implicit:
        known = ", ".join(sorted(t for t, c in types.items() if not c.implicit))
        raise ConfigError(f"unknown node type {node_type!r} (known: {known})", file=source, field="type", **where)
    where["node_type"] = node_type
    if name in implicit_names():
        raise ConfigError(f"{name!r} is a reserved node name (an implicit node)", file=source, field="name", **where)
    if name in seen:
        raise ConfigError(f"duplicate node name {name!r} (also node #{seen[name]})", file=source, field="name", **where)
    seen[name] = number
    if not _schema_check(node_schema(node_type), raw, source, "", errors, **where):
        _report_exclusive(raw, source, where, errors)
        return None  # (checking) its schema errors are noted; building it would repeat them
    _report_exclusive(raw, source, where, None)
    attrs = {k: v for k, v in raw.items() if k not in ("name", "type", *CONNECTION_KEYS)}
    conns = {k: raw[k] for k in CONNECTION_KEYS if k in raw}
    spec = NodeSpec(name=name, type=node_type, index=number, attrs=attrs, source=source, connections=conns)
    try:
        node = cls(spec, info)
    except ConfigError as e:
        raise e.located(source) from None
    return spec, node, conns
