"""The "combine two APIs" job written by hand as a plain mitmproxy addon, to
compare with the same job as a Datakit workflow (bench item 2).

    mitmdump -s bench/handwritten.py --set combine_base=http://127.0.0.1:PORT

For `/combine*` requests it calls `{base}/api/a` and `{base}/api/b`
concurrently through one pooled aiohttp session (as Datakit's `call` node
does), joins the two JSON bodies and answers the client itself. Failures
answer 500, as a Datakit workflow would.

With `--set hand_call_url=URL` (bench item 4's reference) every other flow
first GETs URL and passes its status upstream in `X-Lookup-Status`: the
same job as bench.workflows.CALL_THEN_PROXY.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
from mitmproxy import ctx, http


class CombineTwoApis:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def load(self, loader) -> None:
        loader.add_option("combine_base", str, "", "Base URL of the two APIs.")
        loader.add_option("hand_call_url", str, "", "Call this URL for every other flow.")

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=60),
            )
        return self.session

    async def _get_json(self, url: str) -> object:
        async with self._session().get(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{url} returned {resp.status}")
            return json.loads(await resp.read())

    async def request(self, flow: http.HTTPFlow) -> None:
        if not flow.request.path.startswith("/combine"):
            if ctx.options.hand_call_url:
                await self._lookup(flow, ctx.options.hand_call_url)
            return
        base = ctx.options.combine_base
        try:
            user, orders = await asyncio.gather(self._get_json(f"{base}/api/a"), self._get_json(f"{base}/api/b"))
        except Exception as e:  # noqa: BLE001
            flow.response = http.Response.make(500, json.dumps({"message": str(e)}).encode(), {"Content-Type": "application/json"})
            return
        body = json.dumps({"user": user, "orders": orders}, separators=(",", ":")).encode()
        flow.response = http.Response.make(200, body, {"Content-Type": "application/json"})

    async def _lookup(self, flow: http.HTTPFlow, url: str) -> None:
        try:
            async with self._session().get(url) as resp:
                await resp.read()
                status = resp.status
        except Exception as e:  # noqa: BLE001
            flow.response = http.Response.make(500, json.dumps({"message": str(e)}).encode(), {"Content-Type": "application/json"})
            return
        flow.request.headers["x-lookup-status"] = str(status)

    async def done(self) -> None:
        if self.session is not None:
            await self.session.close()


addons = [CombineTwoApis()]
