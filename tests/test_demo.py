"""`just demo` end to end: mock APIs, a real mitmdump, requests, shutdown."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from mitmdatakit import demo
from tests.harness import REPO, port_accepts


def test_the_demo_runs_end_to_end():
    busy = [p for p in (demo.USERS_PORT, demo.ORDERS_PORT, demo.BACKEND_PORT) if port_accepts(p)]
    if busy:
        pytest.skip(f"demo ports in use: {busy}")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.run(
        [sys.executable, "-m", "mitmdatakit.demo", "--no-color"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # five steps, each as expected
    assert len(re.findall(r"^\[\d\] ", out, re.M)) == 5
    assert len(re.findall(r"^    ok$", out, re.M)) == 5
    assert "unexpected" not in out
    # what it shows: the combined answer, concurrency, the trace, the proxied
    # request with its token, the failure
    assert '"total_spent": 49.75' in out
    combined_ms = int(re.search(r"dashboard\?user=1\n    <- 200 in (\d+) ms", out).group(1))
    assert combined_ms < 2 * demo.API_DELAY * 1000, "the two calls did not overlap"
    assert '"status": "PLAN_COMPLETE"' in out and "run      ORDERS (call)" in out
    assert '"authorization": "Bearer demo-token-for-datakit-demo"' in out
    assert '"name": "USER"' in out and "<- 500" in out
    # the mock APIs saw the calls the workflows make
    assert "users API   4 request(s): GET /users/1, GET /users/2, POST /token, GET /users/99" in out
    assert "backend     1 request(s): GET /api/orders/A-100" in out
    assert re.search(r"Datakit: loaded \d+ workflow\(s\) .*20-demo-combine \(7 nodes\), 21-demo-proxy \(7 nodes\)", out)
    assert re.search(r"demo OK: .*mitmdump stopped", out)
    # everything was shut down
    assert not any(port_accepts(p) for p in (demo.USERS_PORT, demo.ORDERS_PORT, demo.BACKEND_PORT))


def test_the_demo_keeps_serving_until_ctrl_c():
    """`demo --keep`: everything stays up for the user's own requests; SIGINT
    stops it all, exit 0, no process left behind."""
    import signal
    import time

    import httpx

    busy = [p for p in (demo.USERS_PORT, demo.ORDERS_PORT, demo.BACKEND_PORT) if port_accepts(p)]
    if busy:
        pytest.skip(f"demo ports in use: {busy}")
    from tests.harness import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mitmdatakit.demo", "--no-color", "--keep", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops them" in line:
                break
        assert any("Still running (--keep)" in line for line in lines), "".join(lines)
        time.sleep(1)  # well past the steps: the demo no longer ends by itself
        assert proc.poll() is None
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as c:
            r = c.get("http://datakit.local/hello?name=keep")
            assert r.json()["message"] == "Hello, keep!"
            # the mock APIs that docs/nodes.md points at still answer
            assert httpx.get(f"http://127.0.0.1:{demo.USERS_PORT}/users/1", trust_env=False).json()["id"] == 1
        mitmdump_pid = int(next(line for line in lines if "mitmdump pid" in line).split()[-1])
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "Ctrl-C: stopping" in rest and "demo OK" in rest
    assert not port_accepts(port) and not port_accepts(demo.USERS_PORT)
    with pytest.raises(ProcessLookupError):
        os.kill(mitmdump_pid, 0)  # reaped by the demo: gone
