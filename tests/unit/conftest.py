"""Fixtures of the in-process addon tests (helpers: addon_support.py)."""

from __future__ import annotations

import pytest
from mitmproxy.test import taddons

from mitmdatakit.addon import Datakit
from tests.harness import MockServer, Reply
from tests.unit.addon_support import DK


@pytest.fixture
async def dk(tmp_path):
    """The addon in mitmproxy's test context, serving an empty directory until `dk.load`."""
    empty = tmp_path / "empty"
    empty.mkdir()
    addon = Datakit(default_config=str(empty))
    with taddons.context(addon) as tctx:
        yield DK(tctx, addon, tmp_path)
        await addon.done()


@pytest.fixture(scope="module")
def srv():
    """A local API with fixed routes, some slow (module scope)."""
    with MockServer() as server:
        server.route("GET", "/a", Reply(json={"n": 1}, delay=0.05))
        server.route("GET", "/b", Reply(json={"n": 2}, delay=0.15))
        server.route("GET", "/slow300", Reply(json={"slow": True}, delay=0.3))
        server.route("GET", "/slow3s", Reply(json={"slow": True}, delay=3.0))
        server.route("GET", "/fast", Reply(json={"x": 1}, delay=0.05))
        yield server

