"""One owner of aiohttp sessions, one URL check, options read through
mitmproxy's public API."""

from __future__ import annotations

import asyncio

import pytest
from mitmproxy.options import Options

from mitmdatakit.http_clients import CALLS, UPSTREAM, HttpClients
from mitmdatakit.runtime import Services, option_value
from mitmdatakit.urls import default_port, http_url


async def test_one_pooled_session_per_kind_closed_together():
    clients = HttpClients()
    calls, upstream = clients.session(CALLS), clients.session(UPSTREAM)
    assert clients.session(CALLS) is calls and clients.session(UPSTREAM) is upstream
    assert calls is not upstream
    assert calls.auto_decompress and not upstream.auto_decompress  # the upstream's encoding is kept, as mitmproxy does
    await clients.aclose()
    assert calls.closed and upstream.closed
    fresh = clients.session(CALLS)
    assert fresh is not calls and not fresh.closed
    await clients.aclose()


def test_a_new_event_loop_gets_a_new_session():
    clients = HttpClients()

    async def take():
        return clients.session(CALLS)

    first = asyncio.run(take())
    second = asyncio.run(take())
    assert first is not second
    asyncio.run(clients.aclose())


async def test_services_http_is_the_calls_session():
    services = Services()
    assert services.http() is services.clients.session(CALLS)
    await services.aclose()
    assert services.clients._sessions == {}


def test_options_are_read_through_the_public_api():
    options = Options()
    assert option_value(options, "listen_port") == options.listen_port
    with pytest.raises(KeyError):
        option_value(options, "datakit_no_such_option")
    with pytest.raises(KeyError):
        Services().option("datakit_no_such_option")
    assert Services().option_or("datakit_no_such_option", 7) == 7


@pytest.mark.parametrize(
    "url, port",
    [("http://a.test/x", 80), ("https://a.test", 443), ("http://[::1]:8080/", 8080), ("HTTPS://A.test:1/", 1)],
)
def test_http_urls(url, port):
    parts = http_url(url)
    assert parts is not None and default_port(parts) == port


@pytest.mark.parametrize("url", ["ftp://a.test/", "http://", "/relative", "http://[::1/", None, 42, "a.test"])
def test_not_http_urls(url):
    assert http_url(url) is None
