"""Fixtures shared by the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def client(env) -> Iterator[httpx.Client]:
    """A client through the module's mitmdump (each module's `env` fixture
    yields `(mitmdump, mock server)`), patient enough for large bodies."""
    mitm, _ = env
    with mitm.client(timeout=httpx.Timeout(60.0, connect=5.0)) as c:
        yield c
