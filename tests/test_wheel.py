"""The installed package: a wheel built from this tree, installed in a fresh
virtualenv, runs with its defaults (`mitmdump -s "$(python -m
mitmdatakit.script)"`): the example workflows shipped inside the package,
and mitmproxy's own confdir for the CA."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness.net import HOST, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]


def run(*cmd: str | Path, **kw) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, timeout=300, **kw).stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to build the wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    run(uv, "build", "--wheel", "--out-dir", tmp / "dist", REPO, cwd=REPO)
    (wheel,) = (tmp / "dist").glob("mitmdatakit-*.whl")
    env = tmp / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, env)
    # the wheel alone (no network here); its dependencies come from this
    # environment's site-packages, through a .pth line (which does not
    # process this environment's own .pth files: the editable checkout of
    # mitmdatakit stays out of sight)
    run(uv, "pip", "install", "--quiet", "--offline", "--no-deps", "--python", env / "bin" / "python", wheel)
    (purelib,) = (env / "lib").glob("python3*/site-packages")
    (purelib / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env


def test_the_package_comes_from_the_wheel(venv, tmp_path):
    where = run(venv / "bin" / "python", "-c", "import mitmdatakit; print(mitmdatakit.__file__)", cwd=tmp_path)
    assert where.startswith(str(venv)), where


def test_script_path_and_default_workflows_are_inside_the_package(venv, tmp_path):
    python = venv / "bin" / "python"
    script = Path(run(python, "-m", "mitmdatakit.script", cwd=tmp_path).strip())
    assert script.is_file() and script.name == "datakit.py" and script.is_relative_to(venv)
    config = Path(run(python, "-c", "from mitmdatakit.addon import default_config_path; print(default_config_path())", cwd=tmp_path).strip())
    assert config.is_relative_to(venv) and sorted(p.name for p in config.iterdir()) == sorted(
        p.name for p in (REPO / "workflows").iterdir()
    )


def test_mitmdump_runs_the_shipped_example_with_the_defaults(venv, tmp_path):
    python = venv / "bin" / "python"
    script = run(python, "-m", "mitmdatakit.script", cwd=tmp_path).strip()
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["HOME"] = str(home)  # mitmproxy's default confdir, ~/.mitmproxy, lands here
    log = tmp_path / "mitmdump.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            # what the `mitmdump` entry point runs (the wheel's dependencies,
            # with their scripts, are not installed in this venv)
            [str(python), "-c", "import sys; from mitmproxy.tools.main import mitmdump; sys.exit(mitmdump())", "-s", script, "--listen-host", HOST, "--listen-port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=60)
        deadline = time.monotonic() + 30
        while "Datakit: loaded" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        with httpx.Client(proxy=f"http://{HOST}:{port}", trust_env=False, timeout=30) as c:
            r = c.get("http://datakit.local/hello?name=wheel")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = log.read_text()
    assert "Datakit: loaded 3 workflow(s)" in text, text
    assert r.status_code == 200, text
    assert r.json()["message"] == "Hello, wheel!"
    assert (home / ".mitmproxy" / "mitmproxy-ca-cert.pem").is_file()  # mitmproxy's own confdir
