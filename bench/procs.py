"""Processes for the benchmarks: the upstream, mitmdump, the load generator,
and what /proc says about them (CPU time, RSS)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
ADDON = REPO / "addon" / "datakit.py"
MITMDUMP = Path(sys.executable).parent / "mitmdump"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_seconds(pid: int) -> float:
    """CPU time of a process's live children (Datakit's jq workers)."""
    total = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        for child in children:
            with contextlib.suppress(OSError):  # gone meanwhile
                total += cpu_seconds(int(child))
    return total


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Proc:
    """A child process that is stopped (TERM, then KILL) on exit."""

    def __init__(self, cmd: Sequence[str], name: str, workdir: Path, env: dict | None = None) -> None:
        self.name = name
        self.port = 0  # where it listens, once started
        self.log = workdir / f"{name}.log"
        self._logf = open(self.log, "wb")  # noqa: SIM115 - kept open for the child's lifetime, closed in stop()
        self.proc = subprocess.Popen(
            list(cmd), stdout=self._logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO, env={**os.environ, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        """The process's CPU time plus its live children's (jq workers)."""
        return cpu_seconds(self.pid) + children_cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_upstream(workdir: Path, seconds: float = 3600) -> tuple[Proc, int]:
    port = free_port()
    p = Proc([sys.executable, "-m", "bench.upstream", "--port", str(port), "--seconds", str(seconds)], f"upstream-{port}", workdir)
    p.port = port
    wait_port(port, p.proc, 20, "upstream", p.log)
    return p, port


def confdir(workdir: Path) -> Path:
    """A mitmproxy confdir with its CA made once (shared by every mitmdump)."""
    from mitmproxy.certs import CertStore

    path = workdir / "confdir"
    path.mkdir(exist_ok=True)
    CertStore.from_store(path, "mitmproxy", 2048)
    return path


def start_mitmdump(
    workdir: Path,
    upstream_port: int,
    name: str,
    scripts: Sequence[Path | str] = (),
    options: dict[str, str] | None = None,
) -> tuple[Proc, int]:
    """mitmdump in reverse-proxy mode to the upstream, quiet (no per-flow
    output, which would otherwise dominate the cost)."""
    port = free_port()
    cmd = [
        str(MITMDUMP), "--mode", f"reverse:http://127.0.0.1:{upstream_port}",
        "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={confdir(workdir)}",
    ]
    options = {"flow_detail": "0", "termlog_verbosity": "warn", **(options or {})}
    for s in scripts:
        cmd += ["-s", str(s)]
    for k, v in options.items():
        cmd += ["--set", f"{k}={v}"]
    p = Proc(cmd, f"mitmdump-{name}-{port}", workdir)
    p.port = port
    wait_port(port, p.proc, 60, f"mitmdump ({name})", p.log)
    time.sleep(0.3)  # scripts finish loading just after the port opens
    if p.proc.poll() is not None:
        raise RuntimeError(f"mitmdump ({name}) exited: {p.log.read_text(errors='replace')[-3000:]}")
    return p, port


def load(port: int, path: str = "/", *, concurrency: int = 16, requests: int = 10_000, seconds: float = 5.0,
         headers: Sequence[str] = (), host: str = "bench.local") -> dict:
    """Run the load generator (a separate process) and return its results."""
    cmd = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--path", path, "--host", host,
           "--concurrency", str(concurrency), "--requests", str(requests), "--seconds", str(seconds)]
    for h in headers:
        cmd += ["--header", h]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 120, stdin=subprocess.DEVNULL, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measured_load(proxy: Proc, port: int, path: str = "/", **kw) -> dict:
    """`load` plus the proxy's CPU time and RSS around it."""
    cpu0 = proxy.cpu()
    result = load(port, path, **kw)
    result["cpu"] = proxy.cpu() - cpu0
    result["cpu_per_request_us"] = result["cpu"] / result["requests"] * 1e6 if result["requests"] else None
    result["rss"] = proxy.rss()
    return result


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="datakit-bench-"))
