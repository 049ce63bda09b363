"""The Datakit contentview in a real browser: mitmweb with the addon, headless
Debian chromium driven over the DevTools protocol. A failing workflow run is
selected in the flow list, its response switched to the raw view and back to
"Datakit", and the text on screen is checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.harness import MockServer, Reply
from tests.harness.chromium import CHROMIUM, Chromium
from tests.harness.mitmweb import Mitmweb, open_response, select_view
from tests.reliability._support import write_workflows

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")


def workflow(mock: MockServer) -> dict:
    return {"match": {"paths": ["/orders"]}, "nodes": [
        {"name": "ORDER", "type": "static", "values": {"id": 7}},
        {"name": "INVENTORY", "type": "call", "method": "POST", "url": mock.url_for("/inventory"), "inputs": {"body": "ORDER"}},
        {"name": "REPLY", "type": "exit", "inputs": {"body": "INVENTORY.body"}},
    ]}


def test_datakit_view_in_mitmweb(tmp_path: Path):
    with MockServer() as mock:
        mock.route("POST", "/inventory", Reply(status=503, json={"error": "down"}))
        config = write_workflows(tmp_path / "wf", {"orders": workflow(mock)})
        with Mitmweb(config, quiet=True) as web:
            with web.client() as c:
                assert c.get("http://shop.test/orders/7").status_code == 500

            async def drive() -> tuple[str, str, str]:
                async with Chromium() as browser:
                    await open_response(browser, web, "/orders/7")
                    row = await browser.js("[...document.querySelectorAll('tr')].find(e => e.textContent.includes('/orders/7')).innerText")
                    raw = await select_view(browser, "raw")
                    shown = await select_view(browser, "Datakit")
                    return row, raw, shown

            row, raw, shown = asyncio.run(drive())
    assert "❌" in row  # the failure marker in the flow list
    assert "An unexpected error occurred" in raw and "INVENTORY" not in raw
    assert "workflow    00-orders" in shown
    assert "status      PLAN_ERROR" in shown
    assert "failed at   node INVENTORY (call" in shown and "non-2XX response code: 503" in shown
    lines = {line.split()[0]: line for line in shown.splitlines() if line.startswith("  ") and line.split()}
    assert "NODE_COMPLETE" in lines["ORDER"] and "█" in lines["ORDER"]
    assert "NODE_ERROR" in lines["INVENTORY"] and "█" in lines["INVENTORY"]
    assert "NODE_CANCELED" in lines["REPLY"]
