"""`just demo`: Datakit in a real mitmdump, fully offline, in a few seconds.

    uv run python -m mitmdatakit.demo [--keep] [--port PORT] [--verbose] [--no-color]

1. starts three local mock APIs on fixed ports (the demo workflows in
   `workflows/` point at them): users API 127.0.0.1:18081, orders API
   127.0.0.1:18082, backend (the upstream) 127.0.0.1:18083;
2. starts `mitmdump -s addon/datakit.py` (this environment's mitmdump) on a
   free local port, serving the repository's `workflows/` directory;
3. sends requests through it (one with the `X-DataKit-Debug-Trace` header)
   and prints what happened;
4. stops everything (with `--keep`: only on Ctrl-C, so that you can try the
   workflows and docs/nodes.md's examples against the mock APIs). Exit
   status 0 when every step behaved as expected.

Nothing leaves 127.0.0.1: the demo hosts (`datakit.local`,
`demo.datakit.local`) are answered or re-targeted by the workflows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .mock_api import MockAPI, Recorded, Reply

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "addon" / "datakit.py"
WORKFLOWS = REPO / "workflows"
CONFDIR = REPO / "certs"
USERS_PORT, ORDERS_PORT, BACKEND_PORT = 18081, 18082, 18083
API_DELAY = 0.3  # each mock API takes this long: shows that calls overlap

USERS = {
    "1": {"id": 1, "name": "Ada Lovelace", "email": "ada@example.test"},
    "2": {"id": 2, "name": "Alan Turing", "email": "alan@example.test"},
}
ORDERS = {
    "1": [{"id": "A-100", "total": 42.5, "items": 3}, {"id": "A-101", "total": 7.25, "items": 1}],
    "2": [{"id": "B-200", "total": 99.0, "items": 5}],
}

BOLD, DIM, GREEN, RED, CYAN, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[36m", "\033[0m"


def _color(enabled: bool) -> Callable[[str, str], str]:
    return (lambda code, text: f"{code}{text}{RESET}") if enabled else (lambda code, text: text)


# -- the mock APIs -----------------------------------------------------------------


def start_apis(stack: ExitStack) -> dict[str, MockAPI]:
    """The three mock APIs, started; `stack` stops them."""
    users = MockAPI(USERS_PORT, "users API")
    orders = MockAPI(ORDERS_PORT, "orders API")
    backend = MockAPI(BACKEND_PORT, "backend")

    def user(req: Recorded) -> Reply:
        found = USERS.get(req.path.rsplit("/", 1)[-1])
        if found is None:  # at once, while the orders call is still running
            return Reply(status=404, json={"error": "no such user"})
        return Reply(json=found, delay=API_DELAY)

    def orders_of(req: Recorded) -> Reply:
        return Reply(json={"orders": ORDERS.get(str(req.query.get("user")), [])}, delay=API_DELAY)

    def token(req: Recorded) -> Reply:
        client = req.json().get("client_id", "?") if req.body else "?"
        return Reply(json={"access_token": f"demo-token-for-{client}", "expires_in": 300})

    def echo(req: Recorded) -> Reply:
        return Reply(json={"backend": "got your request", **req.echo()})

    users.route("GET", "/users/*", user).route("POST", "/token", token)
    orders.route("GET", "/orders", orders_of)
    backend.route("*", "/*", echo)
    started: dict[str, MockAPI] = {}
    for key, api in (("users", users), ("orders", orders), ("backend", backend)):
        try:
            started[key] = stack.enter_context(api)
        except OSError as e:
            raise SystemExit(f"demo: cannot listen on 127.0.0.1:{api.port} for the {api.name} ({e.strerror}); "
                             "is another demo running?") from None
    return started


# -- mitmdump ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mitmdump:
    """This environment's mitmdump with the Datakit addon, output collected."""

    def __init__(self, port: int, config: Path, confdir: Path) -> None:
        self.port = port
        exe = Path(sys.executable).parent / "mitmdump"
        self.cmd = [
            str(exe if exe.exists() else "mitmdump"), "-s", str(SCRIPT),
            "--listen-host", "127.0.0.1", "--listen-port", str(port),
            "--set", f"confdir={confdir}", "--set", f"datakit_config={config}",
        ]
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(var, None)
        # a process group of its own: a terminal's Ctrl-C reaches only the
        # demo, which then stops mitmdump (and reports it stopped by request)
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO, process_group=0,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mitmdump exited at start:\n" + "\n".join(self.lines[-30:]))
            loaded = any("Datakit: loaded" in line for line in self.lines)
            if loaded and _accepts(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError("mitmdump did not start in time:\n" + "\n".join(self.lines[-30:]))

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def __enter__(self) -> Mitmdump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# -- the scenario ----------------------------------------------------------------------


@dataclass
class Step:
    title: str
    url: str
    explain: str
    check: Callable[[int, dict[str, str], Any], str | None]  # None: as expected, else what is wrong
    headers: dict[str, str] | None = None
    show: Callable[[Any], Any] | None = None  # what part of the body to print


def _expect(cond: bool, message: str) -> str | None:
    return None if cond else message


def steps() -> list[Step]:
    return [
        Step(
            "The quick-start workflow answers by itself",
            "http://datakit.local/hello?name=demo",
            "workflows/10-hello.yaml: static + jq + exit; no upstream is contacted.",
            lambda status, h, body: _expect(status == 200 and body.get("message") == "Hello, demo!", "expected 200 'Hello, demo!'"),
        ),
        Step(
            "Two APIs called at the same time, one combined answer",
            "http://demo.datakit.local/dashboard?user=1",
            f"workflows/20-demo-combine.yaml: calls the users and orders APIs (each takes {API_DELAY:.1f} s) "
            "concurrently and joins them with jq; the whole request takes about one API delay, not two.",
            lambda status, h, body: _expect(
                status == 200 and body.get("user") == "Ada Lovelace" and body.get("total_spent") == 49.75
                and h.get("x-datakit-workflow") == "20-demo-combine",
                "expected the combined dashboard of user 1",
            ),
        ),
        Step(
            "The same request with X-DataKit-Debug-Trace: 1",
            "http://demo.datakit.local/dashboard?user=2",
            "The workflow has `debug: true`, so the trace header replaces the answer with the execution trace.",
            lambda status, h, body: _expect(
                status == 200 and body.get("status") == "PLAN_COMPLETE" and _declared_nodes(body) == 7,
                "expected a PLAN_COMPLETE trace report of 7 nodes",
            ),
            headers={"X-DataKit-Debug-Trace": "1"},
            show=lambda body: _trace_summary(body),
        ),
        Step(
            "Proxied to the backend with a token; the response decorated",
            "http://demo.datakit.local/api/orders/A-100",
            "workflows/21-demo-proxy.yaml: before proxying, a token call and kong.service.target; after the "
            "backend answered, jq adds fields to its body and a static adds a header.",
            lambda status, h, body: _expect(
                status == 200 and body.get("decorated_by") == "datakit" and body.get("backend_status") == 200
                and body.get("headers", {}).get("authorization") == "Bearer demo-token-for-datakit-demo"
                and h.get("x-datakit-workflow") == "21-demo-proxy",
                "expected the backend's echo with the token, decorated",
            ),
            show=lambda body: {k: body[k] for k in ("backend", "path", "decorated_by", "backend_status") if k in body}
            | {"headers the backend got": {k: v for k, v in body.get("headers", {}).items() if k in ("authorization", "x-demo-user", "host")}},
        ),
        Step(
            "A failing call fails the workflow",
            "http://demo.datakit.local/dashboard?user=99",
            "The users API answers 404 for user 99 at once: the USER call fails, the ORDERS call still in "
            "flight is cancelled, and the client gets a 500 (with `debug: true`, the body names the failed node).",
            lambda status, h, body: _expect(
                status == 500 and body.get("message") == "node execution error" and body.get("node", {}).get("name") == "USER",
                "expected a 500 naming node USER",
            ),
        ),
    ]


def _declared_nodes(report: Mapping[str, Any]) -> int:
    """The workflow's own nodes in a trace report (Kong's trace also lists
    the implicit ones it used, each named as its type)."""
    return sum(1 for n in report.get("nodes", []) if n.get("name") not in IMPLICIT_NODES)


IMPLICIT_NODES = frozenset({"request", "service_request", "service_response", "response", "vault"})


def _trace_summary(report: dict[str, Any]) -> dict[str, Any]:
    timeline = []
    for event in report.get("events", []):
        timeline.append(f"{event['at'] * 1000:7.1f} ms  {event['action']:<8} {event['name']} ({event['type']})")
    return {
        "status": report.get("status"),
        "duration_ms": round(report.get("duration", 0) * 1000, 1),
        "nodes": {n["name"]: n["status"] for n in report.get("nodes", [])},
        "timeline": timeline,
    }


async def send_all(proxy: str, out: Callable[[str], None], c: Callable[[str, str], str]) -> list[str]:
    import aiohttp

    failures: list[str] = []
    async with aiohttp.ClientSession(trust_env=False) as session:
        for n, step in enumerate(steps(), 1):
            out("")
            out(c(BOLD, f"[{n}] {step.title}"))
            out(c(DIM, "    " + step.explain))
            extra = "".join(f"\n        {k}: {v}" for k, v in (step.headers or {}).items())
            out(f"    {c(CYAN, '->')} GET {step.url}{extra}")
            started = time.perf_counter()
            try:
                async with session.get(step.url, proxy=proxy, headers=step.headers or {}, timeout=aiohttp.ClientTimeout(total=20)) as resp:
                    raw = await resp.read()
                    status, headers = resp.status, {k.lower(): v for k, v in resp.headers.items()}
            except (TimeoutError, aiohttp.ClientError) as e:
                failures.append(f"[{n}] {step.title}: request failed: {e!r}")
                out(c(RED, f"    request failed: {e!r}"))
                continue
            elapsed = (time.perf_counter() - started) * 1000
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            out(f"    {c(CYAN, '<-')} {status} in {elapsed:.0f} ms" + (f"  (x-datakit-workflow: {headers['x-datakit-workflow']})" if "x-datakit-workflow" in headers else ""))
            shown = step.show(body) if step.show and isinstance(body, dict) else body
            for line in json.dumps(shown, indent=2, ensure_ascii=False).splitlines():
                out("       " + line)
            problem = step.check(status, headers, body if isinstance(body, dict) else {})
            if problem:
                failures.append(f"[{n}] {step.title}: {problem} (got {status})")
                out(c(RED, f"    unexpected: {problem}"))
            else:
                out(c(GREEN, "    ok"))
    return failures


def wait_for_ctrl_c(mitm: Mitmdump, proxy: str, out: Callable[[str], None], c: Callable[[str, str], str]) -> None:
    """Serve until Ctrl-C (SIGINT) or until mitmdump exits by itself."""
    out("")
    out(f"  mitmdump pid {mitm.proc.pid if mitm.proc else '-'}")
    out(c(BOLD, f"Still running (--keep): the mock APIs above and mitmdump at {proxy}. Ctrl-C stops them."))
    out(c(DIM, f"  curl -x {proxy} 'http://demo.datakit.local/dashboard?user=2'"))
    out(c(DIM, f"  curl -x {proxy} 'http://datakit.local/hello?name=you'"))
    try:
        while mitm.proc is not None and mitm.proc.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        out("")
        out("Ctrl-C: stopping mitmdump and the mock APIs")
        return
    raise RuntimeError(f"mitmdump exited by itself (status {mitm.proc.returncode if mitm.proc else None})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mitmdatakit.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print mitmdump's whole log at the end")
    parser.add_argument("--no-color", action="store_true", help="plain output (also when not a terminal)")
    parser.add_argument("--keep", action="store_true", help="keep the mock APIs and mitmdump running until Ctrl-C")
    parser.add_argument("--port", type=int, default=0, help="mitmdump's port (default: a free one)")
    args = parser.parse_args(argv)
    c = _color(sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR"))

    def out(text: str) -> None:
        print(text, flush=True)

    if not SCRIPT.exists():
        out(f"demo: {SCRIPT} not found; run the demo from a checkout of the repository")
        return 2
    out(c(BOLD, "Datakit for mitmproxy: demo (everything on 127.0.0.1)"))
    failures: list[str] = []
    with ExitStack() as stack:  # on the way out: mitmdump stops, then the APIs
        apis = start_apis(stack)
        mitm = stack.enter_context(Mitmdump(args.port or free_port(), WORKFLOWS, CONFDIR))
        try:
            for api in apis.values():
                out(f"  mock {api.name:<11} {api.url}")
            mitm.start()
            proxy = f"http://127.0.0.1:{mitm.port}"
            out(f"  mitmdump          {proxy}  ({' '.join(mitm.cmd[1:3])}, datakit_config={WORKFLOWS.relative_to(REPO)}/)")
            out(c(DIM, f"  try it yourself meanwhile: curl -x {proxy} 'http://demo.datakit.local/dashboard?user=2'"))
            failures = asyncio.run(send_all(proxy, out, c))
            out("")
            out(c(BOLD, "What the mock APIs received"))
            for api in apis.values():
                calls = ", ".join(f"{r.method} {r.path}" + (f"?{'&'.join(f'{k}={v}' for k, v in r.query.items())}" if r.query else "") for r in api.requests)
                out(f"  {api.name:<11} {len(api.requests)} request(s): {calls or '-'}")
            if args.keep:
                wait_for_ctrl_c(mitm, proxy, out, c)
        except KeyboardInterrupt:  # Ctrl-C before the steps ended
            failures.append("interrupted")
        except Exception as e:  # noqa: BLE001 - report and clean up
            failures.append(f"{type(e).__name__}: {e}")
    code = mitm.stop()  # stopped already: its exit status
    datakit_lines = [line for line in mitm.lines if "Datakit" in line]
    out("")
    out(c(BOLD, "mitmdump's log" if args.verbose else "mitmdump's Datakit log lines (--verbose: all of it)"))
    for line in (mitm.lines if args.verbose else datakit_lines)[-40:]:
        out("  " + line)
    out("")
    if failures:
        out(c(RED, f"demo FAILED ({len(failures)} problem(s)):"))
        for f in failures:
            out(c(RED, "  " + f))
        return 1
    out(c(GREEN, f"demo OK: every request behaved as expected; mitmdump stopped (exit {code})."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
