"""Reading what `datakit run` and the pytest plugin are given: request and
response files (a JSON/YAML description or a saved mitmproxy flow file,
told apart by their content), and workflows from any source."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mitmproxy import http

from ..config import load_document, load_path, load_text
from ..summary import METADATA_KEY
from ..workflow import Workflow
from .messages import RequestError, build_flow, build_response, request_flow

__all__ = ["WorkflowSource", "load_request", "load_response", "load_workflows"]

type WorkflowSource = Workflow | str | os.PathLike[str] | Mapping[str, Any] | Sequence[WorkflowSource]
"""What `load_workflows` takes: a path, YAML/JSON text, a parsed document,
a loaded workflow, or a list of these."""


def _read_description(path: Path) -> Any | None:
    """The parsed JSON/YAML document in `path`, or None when it is not one
    (e.g. a binary mitmproxy flow file)."""
    import yaml

    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, Mapping) else None


def _first_http_flow(path: Path) -> http.HTTPFlow:
    from mitmproxy import io
    from mitmproxy.exceptions import FlowReadException

    try:
        with path.open("rb") as f:
            for item in io.FlowReader(f).stream():
                if isinstance(item, http.HTTPFlow):
                    return item
    except FlowReadException as e:
        raise RequestError(f"{path}: not a request description (JSON/YAML) nor a mitmproxy flow file: {e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise RequestError(f"{path}: not a request description (JSON/YAML) nor a mitmproxy flow file: {e}") from None
    except (RecursionError, MemoryError):  # mitmproxy's tnetstring reader recurses, and trusts declared lengths
        raise RequestError(f"{path}: not a mitmproxy flow file: nested too deeply or a length too large") from None
    raise RequestError(f"{path}: the flow file holds no HTTP flow")


def _description_or_flow(path: Path) -> Mapping[str, Any] | http.HTTPFlow:
    """What a file holds: a JSON/YAML description, else (a mitmproxy flow
    file) its first HTTP flow."""
    doc = _read_description(path)
    return doc if doc is not None else _first_http_flow(path)


def load_request(arg: str | os.PathLike[str]) -> http.HTTPFlow:
    """A flow from `datakit run --request ARG`: a URL (GET), a JSON/YAML
    request description file, or a saved mitmproxy flow file (its first
    HTTP flow's request; any response in it is dropped)."""
    text = os.fspath(arg)
    if text.startswith(("http://", "https://")):
        return build_flow("GET", text)
    path = Path(text)
    if not path.is_file():
        raise RequestError(f"{text}: no such file (and not an http:// or https:// URL)")
    found = _description_or_flow(path)
    if not isinstance(found, http.HTTPFlow):
        return request_flow(found, where=str(path))
    flow: http.HTTPFlow = found.copy()  # a fresh id: the request id of this run
    flow.response = None
    flow.error = None
    flow.metadata.pop(METADATA_KEY, None)
    flow.live = True
    return flow


def load_response(arg: str | os.PathLike[str]) -> http.Response:
    """An upstream response from a JSON/YAML description file
    (`{status, headers, body}`) or a saved mitmproxy flow file (the first
    HTTP flow's response)."""
    path = Path(os.fspath(arg))
    if not path.is_file():
        raise RequestError(f"{path}: no such file")
    found = _description_or_flow(path)
    if not isinstance(found, http.HTTPFlow):
        return build_response(found, where=str(path))
    if found.response is None:
        raise RequestError(f"{path}: the flow has no response")
    return found.response.copy()


def load_workflows(source: WorkflowSource, *, name: str = "workflow") -> list[Workflow]:
    """Workflows from a path (file or directory), YAML/JSON text, a parsed
    document (mapping), a Workflow, or a list of any of these. Raises
    ConfigError like the addon's loader."""
    if isinstance(source, Workflow):
        return [source]
    if isinstance(source, os.PathLike):
        return load_path(source)
    if isinstance(source, Mapping):
        return [load_document(source, source="<memory>", default_name=name)]
    if isinstance(source, str):
        stripped = source.lstrip()
        if "\n" in source or stripped.startswith(("{", "nodes:", "config:", "match:", "#")):
            return [load_text(source, source="<memory>", default_name=name, is_json=stripped.startswith("{"))]
        return load_path(source)
    if isinstance(source, Sequence):
        return [wf for item in source for wf in load_workflows(item, name=name)]
    raise TypeError(f"cannot load a workflow from {type(source).__name__}")
