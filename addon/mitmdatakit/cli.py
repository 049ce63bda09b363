"""The `datakit` command: validate, graph and run workflows without a proxy.

    datakit validate PATH...                 check files or directories
    datakit graph PATH [--format mermaid|dot|text]
    datakit run PATH --request FILE_OR_URL [--service-response FILE | --upstream URL] [--trace]
    datakit replay FLOWFILE [--workflows PATH] [--ignore-header NAME]... [--debug]
    datakit schema [--output FILE]           the JSON Schema of workflow files

`validate` and `run` load workflows with the addon's own loader, so what
passes here loads in `mitmdump -s addon/datakit.py` and vice versa.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .config import check_file, load_file, load_path, workflow_files
from .errors import ConfigError
from .redaction import printable
from .render import RENDERERS

EXIT_OK = 0
EXIT_FAILED = 1  # invalid workflow (validate, graph) / the workflow failed (run) / a flow changed (replay)
EXIT_USAGE = 2  # bad arguments, unreadable input, invalid workflow (run)

# -- validate ------------------------------------------------------------------


def validate(paths: Sequence[str], out: TextIO, as_json: bool = False) -> int:
    """Check every workflow file the paths name, one by one, and report every
    error found in each (`errors`; the first one's fields also flat, as
    before)."""
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            files = workflow_files(path)
        except ConfigError as e:
            results.append(_error_entry(e, path))
            continue
        if not files and Path(path).is_dir():
            results.append({"file": str(path), "valid": True, "workflow": None, "note": "no *.yaml, *.yml or *.json files"})
        for f in files:
            loaded, errors = check_file(f)  # a Kong declarative file: one workflow per datakit plugin
            if loaded is None:
                entry = _error_entry(errors[0], str(f))
                entry["errors"] = [_error_entry(e, str(f)) for e in errors]
                results.append(entry)
                continue
            for wf in loaded:
                declared = [n for n in wf.plan.nodes if n.declared]
                results.append({"file": str(f), "valid": True, "workflow": wf.name, "nodes": len(declared), "enabled": wf.enabled})
    invalid = [r for r in results if not r["valid"]]
    if as_json:
        out.write(json.dumps({"valid": not invalid, "files": results}, indent=2) + "\n")
    else:
        lines = []
        for r in results:
            if r["valid"]:
                if r.get("workflow") is None:
                    lines.append(f"ok    {r['file']}: {r['note']}")
                else:
                    extra = "" if r["enabled"] else ", disabled (enabled: false)"
                    lines.append(f"ok    {r['file']}: workflow {r['workflow']!r}, {r['nodes']} node(s){extra}")
            else:
                lines.extend(f"error {error['text']}" for error in r.get("errors") or [r])
        checked = len([r for r in results if r.get("workflow") or not r["valid"]])
        lines.append(f"{checked} file(s) checked, {len(invalid)} invalid")
        out.write(printable("\n".join(lines)) + "\n")  # file names reach the terminal escaped
    return EXIT_FAILED if invalid else EXIT_OK


def _error_entry(e: ConfigError, fallback_file: str) -> dict[str, Any]:
    return {
        "file": e.file or fallback_file,
        "valid": False,
        "node": e.node,
        "index": e.index if e.index is not None and e.index >= 0 else None,
        "node_type": e.node_type,
        "field": e.field,
        "message": e.message,
        "text": str(e) if e.file else f"{fallback_file}: {e}",
    }


# -- graph ---------------------------------------------------------------------


def graph(path: str, fmt: str, out: TextIO, err: TextIO) -> int:
    p = Path(path)
    if p.is_dir():
        try:
            files = ", ".join(f.name for f in workflow_files(p)) or "none"
        except ConfigError:
            files = "none"
        err.write(f"datakit graph: {path} is a directory; give one workflow file (there: {files})\n")
        return EXIT_USAGE
    try:
        wf = load_file(p) if p.exists() else load_path(p)[0]
    except ConfigError as e:
        err.write(f"error {e}\n")
        return EXIT_FAILED
    out.write(RENDERERS[fmt](wf))
    return EXIT_OK


# -- run -----------------------------------------------------------------------


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .offline import (
        OfflineRunner,
        RequestError,
        RunResult,
        UpstreamError,
        closing_workflows,
        load_request,
        load_response,
    )

    try:
        workflows = load_path(args.path)
    except ConfigError as e:
        err.write(f"error {e}\n")
        return EXIT_USAGE
    try:
        flow = load_request(args.request)
        service_response = load_response(args.service_response) if args.service_response else None
    except (RequestError, OSError) as e:
        err.write(f"datakit run: {e}\n")
        return EXIT_USAGE

    async def go() -> RunResult:
        async with closing_workflows(workflows), OfflineRunner() as runner:
            return await runner.run(
                workflows, flow, service_response=service_response, upstream=args.upstream, debug=args.trace,
            )

    try:
        result = asyncio.run(go())
    except UpstreamError as e:
        err.write(f"datakit run: {e}\n")
        return EXIT_FAILED
    if result.workflow is None:
        err.write(f"datakit run: no workflow in {args.path} applies to {flow.request.method} {flow.request.pretty_url}; "
                  "the request passes through unchanged\n")
    out.write(json.dumps(result.to_dict(trace=args.trace, redact=True), indent=2, ensure_ascii=False) + "\n")
    return EXIT_FAILED if result.failed else EXIT_OK


# -- replay --------------------------------------------------------------------


def replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .addon import default_config_path
    from .offline import OfflineRunner, closing_workflows
    from .offline.replay import ReplayError, ReplayReport, iter_flows, replay_flows

    source = args.workflows or default_config_path()
    try:
        workflows = load_path(source)
    except ConfigError as e:
        err.write(f"error {e}\n")
        return EXIT_USAGE
    flows = iter_flows(args.flowfile)  # read as replayed: one flow in memory at a time

    async def go() -> ReplayReport:
        async with closing_workflows(workflows), OfflineRunner() as runner:
            return await replay_flows(
                workflows, flows, runner, source=args.flowfile, ignore_headers=args.ignore_header, debug=args.debug,
                keep_results=False,
            )

    try:
        report = asyncio.run(go())
    except ReplayError as e:
        err.write(f"datakit replay: {e}\n")
        return EXIT_USAGE
    out.write(f"replaying {len(report.flows)} flow(s) from {args.flowfile} through {source}\n")
    out.write(report.text())
    return EXIT_OK if report.ok else EXIT_FAILED


# -- schema --------------------------------------------------------------------


def schema(output: str | None, out: TextIO) -> int:
    from .schema import build_schema

    text = json.dumps(build_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text)
    else:
        out.write(text)
    return EXIT_OK


# -- main ----------------------------------------------------------------------

RUN_HELP = """\
Run a workflow once on one request, in process, with real `call` nodes,
exactly as the mitmproxy addon would (the request as mitmproxy sees it in
regular proxy mode: client 127.0.0.1, proxy port 8080). Prints one JSON
object: {workflow, outcome, response | service_request, error?, trace?}.

outcome:
  exit             an exit node answered; `response` is what the client gets
  failed           a node failed; `response` is the 500 error answer
  service_request  the request would be proxied; `service_request` is what
                   would be sent upstream (method, url, headers, body)
  response         with --service-response or --upstream: the response phase
                   ran; `response` is what the client gets
  no_workflow      no workflow's `match` accepts the request
"""

REQUEST_HELP = """\
--request: a URL (a GET), a JSON/YAML description file, or a saved
mitmproxy flow file (`mitmdump -w FILE`; its first HTTP flow). A
description holds: method (GET), url (required), headers (mapping; a list
value repeats a header), body (a string as is; anything else JSON-encoded
with Content-Type: application/json unless the headers set one), query
(mapping merged into the URL), http_version (HTTP/1.1), client ({ip, port}).

  # request.yaml
  method: POST
  url: http://api.test/orders?page=2
  headers: {authorization: Bearer abc, x-multi: [a, b]}
  body: {item: book}

--service-response: {status (200), headers, body} in the same way, or a flow
file (its first HTTP flow's response).

Exit status: 0 on success, 1 when the workflow failed (or --upstream could
not be reached), 2 for bad arguments, an unreadable request or an invalid
workflow.
"""

REPLAY_HELP = """\
Rerun every HTTP flow of a mitmproxy flow file through the current
workflows, offline, and print per flow how the client response differs from
the recorded one: status, headers, body (JSON field by field, text as a
unified diff). Regression tests from recorded traffic.

Each flow replays the request as the client sent it; the upstream's recorded
response stands in for the upstream (nothing is sent upstream). `call` nodes
really call their URLs (a flow file has no record of them): point them at
local mocks for repeatable replays. Flows without a response (errors) are
skipped.

Exit status: 0 when no flow changed, 1 when any did, 2 for an unreadable
flow file or invalid workflows.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datakit",
        description="Validate, draw and run Datakit workflows (Kong Datakit for mitmproxy) without a proxy.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser(
        "validate",
        help="check workflow files or directories",
        description="Check workflow files with the addon's loader and report every error of every invalid file "
        "(file, node and field of each; the graph's connections are checked once every node is valid). "
        "A directory checks its *.yaml, *.yml and *.json files.",
        epilog="Exit status: 0 when all are valid, 1 otherwise.",
    )
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.add_argument("--json", action="store_true", help="print the results as JSON")

    g = sub.add_parser(
        "graph",
        help="print a workflow's graph (Mermaid, Graphviz dot or text)",
        description="Print a workflow's nodes (with types), its connections (SOURCE.PORT -> TARGET.PORT), "
        "the implicit nodes it uses, branch then/else control edges (dotted/dashed), and which nodes run "
        "before proxying and which after the upstream answered (one subgraph each).",
        epilog="Examples: datakit graph wf.yaml > wf.mmd; datakit graph wf.yaml --format dot | dot -Tsvg > wf.svg. "
        "Exit status: 0, 1 for an invalid workflow, 2 for a directory.",
    )
    g.add_argument("path", metavar="PATH", help="one workflow file")
    g.add_argument("--format", choices=sorted(RENDERERS), default="mermaid", help="output format (default: mermaid)")

    r = sub.add_parser(
        "run",
        help="run a workflow once against a request, offline",
        description=RUN_HELP,
        epilog=REQUEST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("path", metavar="PATH", help="workflow file or directory (first workflow whose match accepts the request runs)")
    r.add_argument("--request", required=True, metavar="FILE_OR_URL", help="the client request (see below)")
    resp = r.add_mutually_exclusive_group()
    resp.add_argument("--service-response", metavar="FILE",
                      help="the upstream's response, as a JSON/YAML {status, headers, body} file or a flow file; "
                      "runs the response phase and prints the client response")
    resp.add_argument("--upstream", metavar="URL",
                      help="really send the service request to this scheme://host:port (not offline) and run the response phase on its answer")
    r.add_argument("--trace", action="store_true",
                   help="trace the run (as if the datakit_debug option were on) and print the trace report")

    e = sub.add_parser(
        "export",
        help="write workflows as a Kong declarative (decK) file",
        description="Write workflow files as a decK file: a workflow with match becomes a service and a route "
        "carrying its datakit plugin; one without match becomes the global datakit plugin (docs/kong.md).",
        epilog="Exit status: 0, 2 for a workflow that cannot be exported.",
    )
    e.add_argument("paths", nargs="+", metavar="PATH")
    e.add_argument("--output", "-o", metavar="FILE", help="write it to FILE instead of stdout")
    e.add_argument("--service-url", default="http://upstream.invalid", metavar="URL",
                   help="the upstream URL of the services written (mitmproxy workflows have none)")

    rp = sub.add_parser(
        "replay",
        help="rerun recorded flows (mitmdump -w) through the workflows and diff the client responses",
        description=REPLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rp.add_argument("flowfile", metavar="FLOWFILE", help="a mitmproxy flow file (mitmdump -w FLOWFILE)")
    rp.add_argument("--workflows", metavar="PATH", help="workflow file or directory (default: the repo's workflows/)")
    rp.add_argument("--ignore-header", action="append", default=[], metavar="NAME",
                    help="also ignore this response header in the comparison (repeatable; Date and Content-Length always are)")
    rp.add_argument("--debug", action="store_true", help="replay as if the datakit_debug option were on (as it was when recording)")

    s = sub.add_parser("schema", help="print the JSON Schema of workflow files",
                       description="Print the JSON Schema of workflow files (the one shipped as mitmdatakit/datakit.schema.json).")
    s.add_argument("--output", "-o", metavar="FILE", help="write it to FILE instead")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    if args.command == "validate":
        return validate(args.paths, out, as_json=args.json)
    if args.command == "graph":
        return graph(args.path, args.format, out, err)
    if args.command in ("run", "replay"):
        # the engine logs failures (node, index, request id): to stderr
        logger = logging.getLogger("mitmdatakit")
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(message)s"))
        saved = logger.propagate, logger.level
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        try:
            return (run if args.command == "run" else replay)(args, out, err)
        finally:
            logger.removeHandler(handler)
            logger.propagate, logger.level = saved
    if args.command == "export":
        from .kong import export

        try:
            export.write(export.export(args.paths, args.service_url), args.output, out)
        except ConfigError as e:
            err.write(f"{e}\n")
            return 2
        return 0
    if args.command == "schema":
        return schema(args.output, out)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
