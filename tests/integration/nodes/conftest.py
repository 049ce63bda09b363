"""The fixtures of the node-level integration tests: one mock API, one
Redis and one mitmdump serving every workflow of `_support.workflows`,
shared by all the files here (session scope: started once, when the first
of them runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness import Mitmdump, MockServer
from tests.integration.nodes._support import start_proxy, workflows
from tests.redis_server import RedisServer, free_port, require_redis


@pytest.fixture(scope="session")
def api() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    require_redis()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dead_redis_port() -> int:
    return free_port()  # nothing listens there


@pytest.fixture(scope="session")
def workflow_dir(tmp_path_factory, api, redis, dead_redis_port) -> Path:
    d = tmp_path_factory.mktemp("node-workflows")
    for name, doc in workflows(api.url, redis.port, dead_redis_port).items():
        (d / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return d


@pytest.fixture(scope="session")
def proxy(workflow_dir, mitm_confdir) -> Iterator[Mitmdump]:
    m = start_proxy(workflow_dir, mitm_confdir)
    yield m
    code = m.stop()
    print(f"\n----- {m!r} exit={code} log tail -----\n{m.log_tail(80)}")


@pytest.fixture
def c(proxy: Mitmdump) -> Iterator[httpx.Client]:
    with proxy.client() as client:
        yield client

