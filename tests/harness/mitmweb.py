"""A real ``mitmweb -s addon/datakit.py`` subprocess, and a client of its
REST API (authenticated, with tornado's XSRF cookie for POSTs).

::

    with Mitmweb(cfg) as web, web.api() as api:
        api.flows()                                   # GET /flows
        api.content(flow_id, "response", "datakit")   # the Datakit contentview
        api.command("datakit.reload")                 # POST /commands/datakit.reload
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx

from .mitmdump import MITMDUMP, Mitmdump, MitmdumpError
from .net import HOST, free_port, port_accepts

MITMWEB = MITMDUMP.parent / "mitmweb"


class Mitmweb(Mitmdump):
    """Like :class:`Mitmdump` (same parameters), running mitmweb: the proxy on
    ``port``, the web UI on ``web_port`` protected by ``password``."""

    def __init__(self, *args: Any, web_port: int | None = None, **kw: Any) -> None:
        self.web_port = web_port or free_port()
        self.password = secrets.token_hex(8)
        super().__init__(*args, **kw)

    @property
    def web_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    @property
    def login_url(self) -> str:
        return f"{self.web_url}/?token={self.password}"

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[0] = str(MITMWEB)
        return [
            *cmd,
            "--set", "web_open_browser=false",
            "--set", f"web_host={HOST}",
            "--set", f"web_port={self.web_port}",
            "--set", f"web_password={self.password}",
        ]

    def _wait_ready(self) -> None:
        super()._wait_ready()
        deadline = time.monotonic() + self.timeout
        while not port_accepts(self.web_port):
            if time.monotonic() > deadline or not self.is_running():
                raise MitmdumpError(f"mitmweb UI not listening on {self.web_port}\n{self.log_tail()}")
            time.sleep(0.05)

    def api(self) -> WebApi:
        return WebApi(self)


class WebApi:
    """mitmweb's REST API (mitmproxy/tools/web/app.py)."""

    def __init__(self, web: Mitmweb) -> None:
        self.http = httpx.Client(base_url=web.web_url, trust_env=False, timeout=15,
                                 headers={"Authorization": f"Bearer {web.password}"})
        self.http.get("/").raise_for_status()  # logs in (auth cookie)
        # tornado's double-submit check: any token, as cookie and header alike
        self.xsrf = secrets.token_hex(16)
        self.http.cookies.set("_mitmproxy_xsrf", self.xsrf)

    def flows(self) -> list[dict[str, Any]]:
        r = self.http.get("/flows")
        r.raise_for_status()
        return r.json()

    def content(self, flow_id: str, message: str, view: str) -> dict[str, Any]:
        r = self.http.get(f"/flows/{flow_id}/{message}/content/{view}.json")
        r.raise_for_status()
        return r.json()

    def command(self, name: str, *arguments: str) -> dict[str, Any]:
        """`{"value": ...}` or `{"error": ...}`, as mitmweb answers."""
        r = self.http.post(f"/commands/{name}", json={"arguments": list(arguments)},
                           headers={"X-XSRFToken": self.xsrf})
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WebApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- driving mitmweb's UI in a browser (tests/harness/chromium.py) -------------

def _js_find(selector: str, text: str, exact: bool = False) -> str:
    test = "e.textContent.trim() === t" if exact else "e.textContent.includes(t)"
    return f"(() => {{ const t = {json.dumps(text)}; return [...document.querySelectorAll({json.dumps(selector)})].find(e => {test}) }})()"


async def click(browser: Any, selector: str, text: str, exact: bool = False) -> None:
    await browser.wait_js(f"!!{_js_find(selector, text, exact)}")
    await browser.js(f"{_js_find(selector, text, exact)}.click()")


async def select_view(browser: Any, view: str) -> str:
    """Choose `view` in the open message's view selector; returns the text
    shown once it changed (pick a view that shows something else than now)."""
    pre = "(document.querySelector('.flow-detail pre') || {}).innerText"
    before = await browser.wait_js(pre)
    await click(browser, ".flow-detail a", "View:")
    await click(browser, ".dropdown-menu a", view.lower(), exact=True)
    await browser.wait_js(f"{_js_find('.flow-detail a', 'View:')}.textContent.includes({json.dumps(view.lower())})")
    return await browser.wait_js(f"(() => {{ const t = {pre}; return t !== {json.dumps(before)} && t }})()")


async def open_response(browser: Any, web: Mitmweb, path: str) -> None:
    """Log in, select the flow whose row shows `path`, open its Response tab."""
    await browser.goto(web.login_url)
    await click(browser, "tr", path)
    await click(browser, ".flow-detail nav a", "Response", exact=True)
