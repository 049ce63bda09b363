"""Every workflow shown in the docs loads as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mitmdatakit.config import load_text

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def workflow_blocks():
    for doc in DOCS:
        for i, match in enumerate(BLOCK.finditer(doc.read_text())):
            text = match.group(1)
            if re.search(r"^(nodes|config):", text, re.M):
                yield pytest.param(text, id=f"{doc.name}#{i}")


@pytest.mark.parametrize("text", list(workflow_blocks()))
def test_documented_workflow_loads(text, monkeypatch):
    monkeypatch.setenv("DEMO_API_KEY", "demo-key")
    monkeypatch.setenv("DEMO_JWT_SECRET", "demo-secret")
    monkeypatch.setenv("DEMO_JWKS", json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}))
    workflow = load_text(text, source="doc.yaml")
    assert workflow.plan.nodes


def test_there_are_documented_workflows():
    assert len(list(workflow_blocks())) >= 15


def _block(marker: str) -> str:
    text = (REPO / "docs" / "nodes.md").read_text()
    return next(m.group(1) for m in BLOCK.finditer(text) if marker in m.group(1))


async def test_documented_property_examples_run():
    """The 'every readable / settable property' examples run as documented."""
    from mitmdatakit.offline import OfflineRunner, build_response, request_flow

    runner = OfflineRunner()
    try:
        got = await runner.run([load_text(_block("CLIENT_IP"), source="get.yaml")], request_flow({"url": "http://api.test/x?y=1"}))
        assert got.response.status == 200
        body = got.response.json()
        assert body["forwarded_host"] == "api.test" and body["version"] == "3.15.0" and body["route_name"] == "workflow"  # load_text default name

        flow = request_flow({"url": "http://api.test/x"})
        upstream = build_response({"status": 200, "headers": {"content-type": "application/json"}, "body": {"ok": True}})
        done = await runner.run([load_text(_block("SET_SHARED"), source="set.yaml")], flow, service_response=upstream, trace=True)
        assert not done.failed
        assert done.response.status == 203  # kong.response.status, from the upstream's 200
        assert done.service_request.url.startswith("http://127.0.0.1:18083/")  # kong.service.target
        assert {n["status"] for n in done.trace["nodes"]} == {"NODE_COMPLETE"}
    finally:
        await runner.aclose()


def test_readme_user_test_passes(tmp_path):
    """The README's complete pytest example passes in a project of its own."""
    import subprocess
    import sys

    code = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    (tmp_path / "test_gateway.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_gateway.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def _sh_block(doc: Path, marker: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", doc.read_text(), re.S)
    block = next(b for b in blocks if marker in b)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_https_example_works_as_written(tmp_path):
    """The README's HTTPS commands, as written, against a real mitmdump (only
    the port and the CA's directory differ: tests use free ports and their
    own CA)."""
    import shlex
    import subprocess

    from tests.harness import Mitmdump

    start, request = _sh_block(REPO / "README.md", "--cacert")
    argv = shlex.split(start)
    assert argv[:3] == ["uv", "run", "mitmdump"], start
    with Mitmdump(None, script=None, args=argv[3:], confdir=tmp_path / "confdir") as mitm:
        ca = str(mitm.ca_cert_path)
        curl = [a.replace("certs/mitmproxy-ca-cert.pem", ca).replace("127.0.0.1:8080", f"127.0.0.1:{mitm.port}")
                for a in shlex.split(request)]
        assert curl[0] == "curl" and "--cacert" in curl and ca in curl
        done = subprocess.run([*curl, "--silent", "--show-error", "--max-time", "20"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr + mitm.log_tail()
    assert json.loads(done.stdout)["message"] == "Hello, world!"


def test_a_new_shell_in_the_checkout_gets_python_3_12():
    """The README's Python note: a fresh shell (no PYENV_VERSION) in the
    checkout runs Python 3.12, for pyenv's python3 and for uv."""
    import os
    import shutil
    import subprocess

    if shutil.which("pyenv") is None:
        pytest.skip("pyenv is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("PYENV_VERSION", "VIRTUAL_ENV", "UV_PYTHON")}
    done = subprocess.run(["bash", "-c", "python3 -V"], cwd=REPO / "docs", env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("Python 3.12"), done.stdout + done.stderr
    assert (REPO / ".python-version").read_text().splitlines()[0] == "3.12"  # uv reads the first line
    # pyenv reads every line: the uv installed under pyenv's 3.11.7 is still found
    uv = subprocess.run(["bash", "-c", "uv --version"], cwd=REPO / "docs", env=env, capture_output=True, text=True, timeout=60)
    assert uv.returncode == 0 and uv.stdout.startswith("uv "), uv.stdout + uv.stderr
    assert ".python-version" in (REPO / "README.md").read_text()
