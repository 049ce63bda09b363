"""Every workflow shown in the docs loads as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mitmdatakit.config import load_text

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def workflow_blocks():
    for doc in DOCS:
        for i, match in enumerate(BLOCK.finditer(doc.read_text())):
            text = match.group(1)
            if re.search(r"^(nodes|config):", text, re.M):
                yield pytest.param(text, id=f"{doc.name}#{i}")


@pytest.mark.parametrize("text", list(workflow_blocks()))
def test_documented_workflow_loads(text, monkeypatch):
    monkeypatch.setenv("DEMO_API_KEY", "demo-key")
    monkeypatch.setenv("DEMO_JWT_SECRET", "demo-secret")
    monkeypatch.setenv("DEMO_JWKS", json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}))
    workflow = load_text(text, source="doc.yaml")
    assert workflow.plan.nodes


def test_there_are_documented_workflows():
    assert len(list(workflow_blocks())) >= 15
