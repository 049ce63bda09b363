"""Regenerate docs/img/mitmweb-datakit.png: mitmweb with the Datakit addon, a
failed workflow run selected, its response shown in the `Datakit` view.

    uv run python scripts/screenshot_mitmweb.py [OUTPUT.png]     (or: just screenshot)

Needs Debian's `chromium` (headless, driven over DevTools); loopback only.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness import MockServer, Reply  # noqa: E402
from tests.harness.chromium import Chromium  # noqa: E402
from tests.harness.mitmweb import Mitmweb, open_response, select_view  # noqa: E402
from tests.reliability._support import write_workflows  # noqa: E402

OUTPUT = REPO / "docs" / "img" / "mitmweb-datakit.png"


def workflow(mock: MockServer) -> dict:
    return {"match": {"paths": ["/orders"]}, "nodes": [
        {"name": "ORDER", "type": "jq", "input": "request.query", "jq": "{id: .id}"},
        {"name": "PRICE", "type": "call", "url": mock.url_for("/price")},
        {"name": "INVENTORY", "type": "call", "method": "POST", "url": mock.url_for("/inventory"), "inputs": {"body": "ORDER"}},
        {"name": "QUOTE", "type": "jq", "inputs": {"price": "PRICE.body", "stock": "INVENTORY.body"}, "jq": "."},
        {"name": "REPLY", "type": "exit", "inputs": {"body": "QUOTE"}},
    ]}


async def shoot(web: Mitmweb, output: Path) -> None:
    async with Chromium(width=1600, height=720) as browser:
        await open_response(browser, web, "/orders")
        await select_view(browser, "raw")
        text = await select_view(browser, "Datakit")
        assert "PLAN_ERROR" in text, text
        await browser.screenshot(output)


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    with MockServer() as mock, tempfile.TemporaryDirectory() as tmp:
        mock.route("GET", "/catalog", Reply(json={"items": 3}))
        mock.route("GET", "/price", Reply(json={"price": 12.5}, delay=0.04))
        mock.route("POST", "/inventory", Reply(status=503, json={"error": "down"}, delay=0.09))
        config = write_workflows(Path(tmp) / "workflows", {"orders": workflow(mock)})
        with Mitmweb(config, quiet=True) as web:
            with web.client() as c:
                c.get(mock.url_for("/catalog"))  # a flow no workflow ran on, for contrast
                c.get("http://shop.test/orders?id=7")
            asyncio.run(shoot(web, output))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
