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
