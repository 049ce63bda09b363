"""`datakit export`: workflows written as a decK file (issue 12) that
Kong's 3.15 Datakit schema accepts, and that answers as the originals did."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from addon.mitmdatakit.cli import main
from tests.harness import REPO


def _kong_schema() -> dict:
    for base in (REPO.parent, REPO.parent.parent):
        f = base / "shared/reference/kong-datakit-3.15-schema.json"
        if f.exists():
            return json.loads(f.read_text())
    pytest.skip("Kong's 3.15 Datakit schema (shared/reference/kong-datakit-3.15-schema.json) is not next to the repository")


WORKFLOWS = {
    "10-orders.yaml": {
        "match": {"hosts": ["api.shop.test"], "paths": ["/orders"], "methods": ["POST"]},
        "nodes": [
            {"name": "ROUTE", "type": "property", "property": "kong.request.forwarded_host"},
            {"name": "body", "type": "static", "values": {"by": "orders"}},
            {"name": "out", "type": "exit", "inputs": {"body": "body"}, "status": 201},
        ],
    },
    "20-tag.yaml": {
        "name": "datakit",
        "config": {"nodes": [
            {"name": "tag", "type": "static", "values": {"x-by": "tag"}, "output": "service_request.headers"},
        ]},
        "match": {"hosts": ["*.tag.test"]},
    },
    "90-all.yaml": {
        "nodes": [{"name": "tag", "type": "static", "values": {"x-by": "global"}, "output": "service_request.headers"}],
    },
}


def _write(tmp_path: Path) -> Path:
    d = tmp_path / "wf"
    d.mkdir()
    for name, doc in WORKFLOWS.items():
        (d / name).write_text(yaml.safe_dump(doc))
    return d


def test_export_writes_services_routes_and_a_global_plugin_kong_accepts(tmp_path, capsys):
    schema = _kong_schema()
    out = tmp_path / "kong.yaml"
    assert main(["export", str(_write(tmp_path)), "-o", str(out), "--service-url", "http://127.0.0.1:9"]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["_format_version"] == "3.0"
    routes = {r["name"]: r for s in doc["services"] for r in s["routes"]}
    assert routes["10-orders"]["hosts"] == ["api.shop.test"] and routes["10-orders"]["methods"] == ["POST"]
    assert routes["20-tag"]["plugins"][0]["name"] == "datakit"
    assert [p["config"]["nodes"][0]["values"] for p in doc["plugins"]] == [{"x-by": "global"}]
    plugins = doc["plugins"] + [p for r in routes.values() for p in r.get("plugins", [])]
    assert len(plugins) == 3
    for p in plugins:
        jsonschema.validate({k: v for k, v in p.items() if k != "name"}, schema)


def test_a_filter_match_is_refused(tmp_path, capsys):
    f = tmp_path / "wf.yaml"
    f.write_text(yaml.safe_dump({"match": {"filter": "~m GET"}, "nodes": [{"name": "x", "type": "static", "values": {}}]}))
    assert main(["export", str(f)]) == 2
    assert "match.filter" in capsys.readouterr().err


def test_export_then_load_gives_the_same_answers(tmp_path, make_mock_server, start_mitmdump):
    upstream = make_mock_server()
    workflows = _write(tmp_path)
    exported = tmp_path / "kong.yaml"
    assert main(["export", str(workflows), "-o", str(exported), "--service-url", upstream.url]) == 0

    def answers(config: Path) -> list:
        mitm = start_mitmdump(config, mode=f"reverse:{upstream.url}")
        seen = []
        with mitm.client() as c:
            for method, host, path in (("POST", "api.shop.test", "/orders/1"), ("GET", "a.tag.test", "/x"),
                                        ("GET", "other.test", "/y"), ("GET", "api.shop.test", "/orders")):
                r = c.request(method, path, headers={"Host": host})
                got = upstream.requests[-1] if upstream.requests else None
                seen.append((r.status_code, r.json() if r.status_code == 201 else got.header("x-by"), got.path if got else None))
                upstream.clear()
        mitm.stop()
        return seen

    original = answers(workflows)
    assert original == [(201, {"by": "orders"}, None), (200, "tag", "/x"), (200, "global", "/y"), (200, "global", "/orders")]
    assert answers(exported) == original
