"""Kong/datakit's own config-schema corpus, run through `datakit validate`.

Source: Kong/datakit `tests/config-json-schema/valid/*.yml` and
`tests/config-json-schema/invalid/*.yml` (copied unchanged into
`kong-datakit-corpus/`; its README names the commit). Kong's `test.sh` there
requires every `valid/` file to pass its schema and every `invalid/` file to
fail it.

The corpus is the older proxy-wasm design. Where a file conflicts with the
3.11+ pages (`app/_kong_plugins/datakit/index.md` and
`app/_schemas/gateway/plugins/3.15/Datakit.json` in Kong/developer.konghq.com)
the pages win: that case is a strict xfail whose reason names the rule, and a
companion test checks the file's point under the 3.15 rules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

CORPUS = Path(__file__).with_name("kong-datakit-corpus")
DATAKIT = Path(sys.executable).parent / "datakit"
KONG_CORPUS = "Kong/datakit tests/config-json-schema/"

# file -> why the 3.11+ pages refuse what the old corpus calls valid
VALID_BUT_OLDER_DESIGN = {
    "call-jq-exit.yml": "older design: 3.15 Datakit.json makes `jq` required on a jq node (JQ_NO_FILTER has none), "
    "and index.md reads named inputs as `.api`, not as the jq variable `$api`",
    "call-timeout-range.yml": "older design: 3.15 Datakit.json requires `name` on every node (x-lua-required)",
    "empty-nodes.yml": "older design: 3.15 Datakit.json gives `nodes` a minimum length of 1",
    "exit-node-status-range.yml": "older design: 3.15 Datakit.json requires `name`, and `exit.status` is 200..599 (100 is refused)",
}

# file -> (field our error must name, fragment of our message): what the file is about
INVALID_BECAUSE = {
    "call-negative-timeout.yml": ("timeout", "between 0 and 2147483646"),
    "call-node.yml": ("url", "required attribute is missing"),
    "content_type.yml": ("content_type", "expected one of"),
    "exit-node-status-out-of-range.yml": ("status", "between 200 and 599"),
    "exit-node.yml": ("status", "expected an integer"),
    "handlebars-node.yml": ("type", "unknown node type 'handlebars'"),
    "missing-node-type.yml": ("type", "required attribute is missing"),
    "missing-nodes.yml": (None, "needs 'nodes'"),
    "node-input-inputs.yml": ("inputs", "'input' and 'inputs' are mutually exclusive"),
    "node-input-output.yml": ("inputs.object", "expected a string"),
    "node-output-outputs.yml": ("outputs", "'output' and 'outputs' are mutually exclusive"),
    "reserved-name.yml": ("name", "reserved node name"),
}


def _validate(*paths: Path) -> dict[str, Any]:
    proc = subprocess.run([str(DATAKIT), "validate", "--json", *map(str, paths)], capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["valid"] else 1), proc.stderr
    return report


@pytest.fixture(scope="module")
def corpus_report() -> dict[str, dict[str, Any]]:
    """One `datakit validate` over the whole corpus: file name -> its entry."""
    report = _validate(CORPUS / "valid", CORPUS / "invalid")
    return {f"{Path(entry['file']).parent.name}/{Path(entry['file']).name}": entry for entry in report["files"]}


def test_the_corpus_is_complete():
    """Kong/datakit tests/config-json-schema/: 4 valid and 12 invalid files, all covered below."""
    assert sorted(p.name for p in (CORPUS / "valid").glob("*.yml")) == sorted(VALID_BUT_OLDER_DESIGN)
    assert sorted(p.name for p in (CORPUS / "invalid").glob("*.yml")) == sorted(INVALID_BECAUSE)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=why)) for n, why in sorted(VALID_BUT_OLDER_DESIGN.items())],
)
def test_valid_corpus_file_is_accepted(corpus_report, name):
    """Kong/datakit tests/config-json-schema/valid/<name>: must be accepted."""
    entry = corpus_report[f"valid/{name}"]
    assert entry["valid"], entry.get("errors")


@pytest.mark.parametrize("name", sorted(INVALID_BECAUSE))
def test_invalid_corpus_file_is_refused_for_its_reason(corpus_report, name):
    """Kong/datakit tests/config-json-schema/invalid/<name>: must be refused;
    our report names the field the file is about, with the reason.

    call-node.yml (no `url`): 3.11 and 3.12 Datakit.json require `url`, 3.13+
    do not (the `url` input); we keep it required, a listed deviation
    (docs/coming-from-kong.md "Schema limits", SPEC section 6)."""
    entry = corpus_report[f"invalid/{name}"]
    assert not entry["valid"], entry
    field, fragment = INVALID_BECAUSE[name]
    errors = entry.get("errors") or [entry]
    assert any(e["field"] == field and fragment in e["message"] for e in errors), [e["text"] for e in errors]


def test_a_node_without_name_still_reports_its_other_errors(corpus_report):
    """Kong/datakit tests/config-json-schema/invalid/call-negative-timeout.yml
    has no `name` (required since 3.11, Datakit.json x-lua-required) and a
    negative timeout: both are reported, on node #1, as Kong's schema
    validation reports every field error at once."""
    errors = corpus_report["invalid/call-negative-timeout.yml"]["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "name"), (1, "timeout")], errors


# -- the valid files' points, under the 3.15 rules ---------------------------------


def _named(doc: dict[str, Any]) -> dict[str, Any]:
    for i, node in enumerate(doc["nodes"], start=1):
        node.setdefault("name", f"{node['type'].upper()}_{i}")
    return doc


def _corpus(name: str) -> dict[str, Any]:
    return yaml.safe_load((CORPUS / name).read_text())


def test_call_timeout_range_with_names(tmp_path):
    """Kong/datakit tests/config-json-schema/valid/call-timeout-range.yml, with
    the `name` 3.15 Datakit.json requires: timeouts 0 and 99999 are accepted
    (3.15: call.timeout 0..2147483646)."""
    path = tmp_path / "call-timeout-range.yaml"
    path.write_text(yaml.safe_dump(_named(_corpus("valid/call-timeout-range.yml"))))
    assert _validate(path)["valid"]


def test_exit_status_range_under_3_15(tmp_path):
    """Kong/datakit tests/config-json-schema/valid/exit-node-status-range.yml
    accepts 100..599; 3.15 Datakit.json says exit.status 200..599: with names,
    599 and 200 are accepted and the file's 100 is refused."""
    doc = _named(_corpus("valid/exit-node-status-range.yml"))
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"nodes": [doc["nodes"][1], {"name": "LOW", "type": "exit", "status": 200}]}))
    low = tmp_path / "low.yaml"
    low.write_text(yaml.safe_dump({"nodes": [doc["nodes"][0]]}))
    assert _validate(ok)["valid"]
    entry = _validate(low)["files"][0]
    assert entry["field"] == "status" and "between 200 and 599" in entry["message"], entry


def test_call_jq_exit_in_the_3_15_idiom(tmp_path):
    """Kong/datakit tests/config-json-schema/valid/call-jq-exit.yml, written as
    index.md "jq node inputs" says (named inputs read as `.api`, and every jq
    node has its `jq`): accepted."""
    doc = _corpus("valid/call-jq-exit.yml")
    doc["nodes"][1]["jq"] = ".api"
    doc["nodes"][2]["jq"] = "."
    path = tmp_path / "call-jq-exit.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert _validate(path)["valid"]
