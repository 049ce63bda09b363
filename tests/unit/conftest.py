"""Fixtures of the in-process addon tests (helpers: addon_support.py)."""

from __future__ import annotations

import pytest
from mitmproxy.test import taddons

from mitmdatakit.addon import Datakit
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
