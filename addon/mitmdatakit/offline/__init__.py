"""Running workflows without a proxy: `datakit run` and the pytest plugin.

A request (built here, or read from a saved mitmproxy flow file) becomes a
real `mitmproxy.http.HTTPFlow` and goes through the same `Engine` the addon
uses, with real `call` nodes. Then, if no exit fired and no node failed,
the service request is what mitmproxy would send upstream; with a given
service response (or a real upstream to send it to) the response phase
runs too and the client response is what the client would get.

The pieces, one module each:

- `messages`: building requests (as flows) and responses;
- `files`: loading request, response and workflow files;
- `results`: `RunResult` and `Message`, the views of what a run produced;
- `runner`: `OfflineRunner`.

The entry points:

- `build_flow(...)`: an HTTPFlow as mitmproxy builds it in regular proxy mode.
- `request_flow(spec)` / `load_request(arg)`: a flow from a description
  (`{method, url, headers, body, ...}`), a URL, or a description / flow file.
- `build_response(spec)` / `load_response(arg)`: an upstream response.
- `OfflineRunner`: runs a flow through the workflows; returns a `RunResult`.
- `load_workflows(source)`: a path, YAML/JSON text, a mapping, or Workflows.
"""

from .files import WorkflowSource, load_request, load_response, load_workflows
from .messages import DEFAULT_LISTEN_PORT, RequestError, build_flow, build_response, request_flow
from .results import Message, RunResult, message_json
from .runner import OfflineRunner, UpstreamError, closing_workflows

__all__ = [
    "DEFAULT_LISTEN_PORT",
    "Message",
    "OfflineRunner",
    "RequestError",
    "RunResult",
    "UpstreamError",
    "WorkflowSource",
    "build_flow",
    "build_response",
    "closing_workflows",
    "load_request",
    "load_response",
    "load_workflows",
    "message_json",
    "request_flow",
]
