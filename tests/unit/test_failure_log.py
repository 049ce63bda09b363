"""The failure log line names the URL the client asked for and the upstream
URL the workflow rewrote it to, both without secrets."""

from __future__ import annotations

import logging

from mitmdatakit.offline import OfflineRunner, load_workflows, request_flow

WORKFLOW = {
    "nodes": [
        {"name": "TARGET", "type": "static", "values": {"t": "upstream.internal:8443"}},
        {"name": "MOVE", "type": "property", "property": "kong.service.target", "input": "TARGET.t"},
        {"name": "CALL", "type": "call", "url": "http://127.0.0.1:9/unreachable", "inputs": {"headers": "MOVE"}},
    ],
}


async def test_the_failure_log_names_the_client_and_the_upstream_url(caplog):
    flow = request_flow({"url": "http://user:pw@api.test/orders?token=s3cret&page=2"})
    with caplog.at_level(logging.ERROR, logger="mitmdatakit"):
        async with OfflineRunner() as runner:
            result = await runner.run(load_workflows(WORKFLOW), flow)
    assert result.failed and result.failed_node == "CALL"
    (line,) = [r.getMessage() for r in caplog.records if "failed at node" in r.getMessage()]
    assert "for GET http://api.test/orders?token=[REDACTED]&page=[REDACTED] (upstream http://upstream.internal:8443/orders?token=[REDACTED]&page=[REDACTED])" in line
    assert "s3cret" not in line and "pw" not in line


def test_every_module_logs_through_the_package_logger_and_its_filters(caplog):
    """Python applies a logger's filters only to records logged on that
    logger, not on its children: a module with a logger of its own would
    skip the secret and control-character filters (redaction.py)."""
    import importlib
    import logging
    import pkgutil

    import mitmdatakit

    own = []
    for info in pkgutil.walk_packages(mitmdatakit.__path__, "mitmdatakit."):
        if info.name.endswith(("__main__", ".script.datakit", "jq_worker")):
            continue  # run as scripts, not imported by the proxy
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, logging.Logger) and value.name != "mitmdatakit":
                own.append(f"{info.name}: {value.name}")
    assert not own, own
    from mitmdatakit.nodes import cache

    with caplog.at_level(logging.ERROR, logger="mitmdatakit"):
        cache.log.error("redis said %s", "\x1b]0;PWNED\x07")
    assert "\x1b" not in caplog.text and "\\x1b]0;PWNED\\x07" in caplog.text
