"""ClientResponse: a run's effects on the client's response, applied at once."""

from __future__ import annotations

import pytest
from mitmproxy.test import tflow

from mitmdatakit.client_response import ClientResponse
from mitmdatakit.errors import CodecError


def test_nothing_recorded_leaves_the_upstream_response_alone():
    flow = tflow.tflow(resp=True)
    before = flow.response.get_state()
    effects = ClientResponse()
    assert not effects.changes_upstream_response
    effects.apply(flow)
    assert flow.response.get_state() == before


def test_exit_answer_then_patch_then_status():
    flow = tflow.tflow()  # no upstream response: answered before proxying
    effects = ClientResponse()
    effects.answer(403, {"X-A": "1"}, {"denied": True}, "EXIT")
    effects.set_patch("headers", {"x-b": "2"})
    effects.status = 418
    effects.apply(flow)
    assert flow.response.status_code == 418
    assert flow.response.headers["x-a"] == "1" and flow.response.headers["x-b"] == "2"
    assert flow.response.headers["content-type"] == "application/json"
    assert flow.response.json() == {"denied": True}


def test_the_first_exit_wins(caplog):
    effects = ClientResponse()
    effects.answer(401, None, "first", "A")
    effects.answer(500, None, "second", "B")
    assert effects.exit is not None and (effects.exit.status, effects.exit.body, effects.exit.node) == (401, "first", "A")
    assert "already set by 'A'" in caplog.text



def test_a_patch_changes_the_upstream_response():
    flow = tflow.tflow(resp=True)
    effects = ClientResponse()
    effects.set_patch("body", "new")
    assert effects.changes_upstream_response
    effects.apply(flow)
    assert flow.response.text == "new"


def test_an_unencodable_header_is_a_codec_error():
    flow = tflow.tflow(resp=True)
    effects = ClientResponse()
    effects.set_patch("headers", {"x-bad": "a\r\nb"})
    with pytest.raises(CodecError):
        effects.apply(flow)
