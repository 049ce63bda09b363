"""Testing a Datakit workflow with pytest: a complete example.

Installing mitmdatakit registers the `datakit` pytest plugin, which provides
the `datakit` and `datakit_mock_api` fixtures used here. Run with:

    uv run pytest examples/test_example_workflow.py
"""

from pathlib import Path

import pytest

WORKFLOW = Path(__file__).with_name("add-token.yaml")


@pytest.fixture
def auth_api(datakit_mock_api):
    """The third-party auth API the workflow calls, on a free local port."""
    api = datakit_mock_api()
    api.route("POST", "/token", json={"access_token": "t0k3n", "expires_in": 60})
    return api


@pytest.fixture
def workflow(auth_api):
    """The workflow, with its auth API URL pointed at the mock."""
    return WORKFLOW.read_text().replace("http://127.0.0.1:18090", auth_api.url)


def test_the_upstream_gets_a_bearer_token(datakit, datakit_mock_api, workflow, auth_api):
    upstream = datakit_mock_api()  # no routes: it echoes each request as JSON

    result = datakit.run(
        workflow, "GET", "http://api.example.test/orders?limit=5",
        headers={"X-User": "ada"},
        upstream=upstream.url,  # really send the service request there
    )

    assert not result.failed
    # the workflow called the auth API ...
    assert auth_api.requests[0].json() == {"client_id": "orders-gateway"}
    # ... and added the token to the request it sent upstream
    assert result.service_request.headers["authorization"] == "Bearer t0k3n"
    assert upstream.requests[0].headers["authorization"] == "Bearer t0k3n"
    assert upstream.requests[0].query == {"limit": "5"}
    # the client gets the upstream's answer, stamped in the response phase
    assert result.response.status == 200
    assert result.response.headers["x-upstream-status"] == "200"
    # every node's outcome is in the trace
    nodes = {n["name"]: n["status"] for n in result.trace["nodes"]}
    assert nodes["GET_TOKEN"] == "NODE_COMPLETE"
    assert nodes["DENY"] == "NODE_SKIPPED"


def test_requests_without_a_user_are_rejected_before_proxying(datakit, workflow, auth_api):
    result = datakit.run(workflow, "GET", "http://api.example.test/orders")

    assert result.exited
    assert result.response.status == 401
    assert result.response.json() == {"message": "X-User is required"}
    assert result.service_request is None  # never proxied
    assert auth_api.requests == []


def test_a_failing_auth_api_fails_the_workflow(datakit, workflow, auth_api):
    auth_api.route("POST", "/token", status=503, body="maintenance")

    result = datakit.run(workflow, "GET", "http://api.example.test/orders", headers={"X-User": "ada"})

    assert result.failed
    assert result.failed_node == "GET_TOKEN"
    assert result.response.status == 500


async def test_an_offline_service_response(datakit, workflow):
    """Async tests await `datakit.arun`; a given service response stands in
    for the upstream."""
    result = await datakit.arun(
        workflow, "POST", "http://api.example.test/orders",
        headers={"X-User": "ada"}, json={"item": "book"},
        service_response={"status": 201, "body": {"id": 42}},
    )

    assert result.service_request.json() == {"item": "book"}
    assert result.response.status == 201
    assert result.response.headers["x-upstream-status"] == "201"
    assert result.response.json() == {"id": 42}
