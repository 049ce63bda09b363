"""pytest fixtures for the integration harness.

Enable in ``tests/conftest.py`` with::

    pytest_plugins = ["tests.harness.fixtures"]

Fixtures:

- ``mock_server``: a started :class:`MockServer` (function scope).
- ``make_mock_server``: factory ``(tls=False) -> started MockServer``, for
  tests that need several (all stopped at teardown).
- ``mitm_confdir``: a session-wide mitmproxy confdir with the CA already
  generated (shared by ``start_mitmdump`` instances to save ~1 s each).
- ``start_mitmdump``: factory ``(config_path=None, **Mitmdump kwargs) ->
  started Mitmdump``; uses ``mitm_confdir`` unless ``confdir=`` is given;
  all instances are stopped at teardown and their log tails printed (pytest
  shows them for failing tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .mitmdump import Mitmdump, ensure_mitm_ca
from .mock_server import MockServer


@pytest.fixture
def mock_server() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture
def make_mock_server() -> Iterator[Callable[..., MockServer]]:
    servers: list[MockServer] = []

    def make(**kw: Any) -> MockServer:
        srv = MockServer(**kw).start()
        servers.append(srv)
        return srv

    yield make
    for srv in reversed(servers):
        srv.stop()


@pytest.fixture(scope="session")
def mitm_confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    confdir = tmp_path_factory.mktemp("mitm-confdir")
    ensure_mitm_ca(confdir)
    return confdir


@pytest.fixture
def start_mitmdump(mitm_confdir: Path) -> Iterator[Callable[..., Mitmdump]]:
    started: list[Mitmdump] = []

    def start(config_path: Any = None, **kw: Any) -> Mitmdump:
        kw.setdefault("confdir", mitm_confdir)
        kw["start"] = False
        m = Mitmdump(config_path, **kw)
        started.append(m)
        m.start()
        return m

    yield start
    for m in reversed(started):
        code = m.stop()
        print(f"\n----- {m!r} exit={code} log tail -----\n{m.log_tail(80)}")
