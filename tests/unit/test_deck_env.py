"""decK's environment substitution in decK files (kong/deck_env.py):
developer.konghq.com app/deck/reference/env-variables.md, and decK's
`getPrefixedEnvVar` / `renderTemplate` (Go template, `${{ }}` delimiters)."""

from __future__ import annotations

import json

import pytest

from mitmdatakit.config import check_file, load_file_workflows
from mitmdatakit.errors import ConfigError
from mitmdatakit.kong.deck_env import render

DECK = """\
_format_version: "3.0"
services:
  - name: s
    url: ${{ env "DECK_UPSTREAM" }}
    routes:
      - name: r
        paths: [/r]
    plugins:
      - name: datakit
        config:
          nodes:
            - name: V
              type: static
              values:
                token: ${{ env "DECK_TOKEN" }}
                debug: ${{ env "DECK_FLAG" | toBool }}
                count: ${{ env "DECK_COUNT" | toInt }}
            - name: EXIT
              type: exit
              inputs: {body: V}
"""
ENV = {"DECK_UPSTREAM": "http://api.test:8080/base", "DECK_TOKEN": "Bearer sk-1", "DECK_FLAG": "T", "DECK_COUNT": "-12"}


def static_values(workflow) -> dict:
    node = workflow.plan.nodes[workflow.plan.by_name["V"]]
    return dict(node.spec.attrs["values"])


def test_placeholders_become_the_variables_values():
    env = {"DECK_A": "one", "DECK_B": "two words"}
    assert render('a: ${{ env "DECK_A" }}\nb: ${{env "DECK_B"}}\n', "f.yaml", env) == "a: one\nb: two words\n"


def test_text_outside_placeholders_is_kept_byte_for_byte():
    text = 'x: "$not {{ a placeholder }}"\n# ${ also not }\n'
    assert render(text, "f.yaml", {}) == text


@pytest.mark.parametrize("action,value,expected", [
    ("toBool", "1", "true"), ("toBool", "False", "false"), ("toBool", "t", "true"),
    ("toInt", "42", "42"), ("toInt", "-7", "-7"), ("toInt", "+3", "3"),
    ("toFloat", "1.5", "1.5"), ("toFloat", "1000000", "1e+06"), ("toFloat", "100000", "100000"),
    ("toFloat", "0.00001", "1e-05"), ("toFloat", "2", "2"),
])
def test_conversions_write_what_gos_template_writes(action, value, expected):
    assert render(f'v: ${{{{ env "DECK_V" | {action} }}}}', "f.yaml", {"DECK_V": value}) == f"v: {expected}"


@pytest.mark.parametrize("action,value", [("toBool", "yes"), ("toInt", "1.5"), ("toInt", "0x10"), ("toFloat", "one")])
def test_a_value_that_does_not_convert_is_an_error(action, value):
    with pytest.raises(ConfigError, match=f"DECK_V.*{action}"):
        render(f'v: ${{{{ env "DECK_V" | {action} }}}}', "f.yaml", {"DECK_V": value})


def test_a_missing_variable_names_the_file_the_line_and_the_variable():
    with pytest.raises(ConfigError) as e:
        render('a: 1\nb: ${{ env "DECK_MISSING" }}\n', "kong.yaml", {})
    message = str(e.value)
    assert message.startswith("kong.yaml: line 2:")
    assert "environment variable 'DECK_MISSING' present in state file but not set" in message


def test_only_deck_prefixed_variables_are_read():
    with pytest.raises(ConfigError, match="must be prefixed with 'DECK_', found: 'HOME'"):
        render('home: ${{ env "HOME" }}', "kong.yaml", {"HOME": "/root"})


@pytest.mark.parametrize("action", ['env "DECK_A" | upper', 'printf "%s" "x"', "", '.Values.x'])
def test_other_template_actions_are_refused(action):
    with pytest.raises(ConfigError, match="unsupported decK template action"):
        render(f"a: ${{{{ {action} }}}}", "kong.yaml", {"DECK_A": "a"})


def test_an_unclosed_placeholder_is_refused():
    with pytest.raises(ConfigError, match="line 2: unclosed"):
        render('a: 1\nb: ${{ env "DECK_A" \n', "kong.yaml", {"DECK_A": "a"})


def test_a_deck_file_is_rendered_before_it_is_parsed(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "kong.yaml"
    path.write_text(DECK)
    (wf,) = load_file_workflows(path)
    assert static_values(wf) == {"token": "Bearer sk-1", "debug": True, "count": -12}


def test_the_value_goes_in_as_text_as_in_deck(tmp_path, monkeypatch):
    """The value is written into the file before YAML reads it: `[a, b]` is a list."""
    for k, v in {**ENV, "DECK_TOKEN": "[a, b]"}.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "kong.yaml"
    path.write_text(DECK)
    (wf,) = load_file_workflows(path)
    assert static_values(wf)["token"] == ["a", "b"]


def test_a_deck_file_naming_an_unset_variable_is_refused_at_load(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DECK_TOKEN")
    path = tmp_path / "kong.yaml"
    path.write_text(DECK)
    with pytest.raises(ConfigError, match=r"kong\.yaml: line 15: environment variable 'DECK_TOKEN'"):
        load_file_workflows(path)
    workflows, errors = check_file(path)  # `datakit validate` says the same
    assert workflows is None
    assert "DECK_TOKEN" in str(errors[0]) and str(path) in str(errors[0])


def test_a_json_deck_file_parses_once_rendered(tmp_path, monkeypatch):
    """decK renders the text first, so the placeholder's own quotes need no escaping."""
    monkeypatch.setenv("DECK_NAME", "from-env")
    doc = {"_format_version": "3.0", "plugins": [{"name": "datakit", "config": {"nodes": [
        {"name": "V", "type": "static", "values": {"v": "PLACEHOLDER"}}]}}]}
    path = tmp_path / "kong.json"
    path.write_text(json.dumps(doc).replace("PLACEHOLDER", '${{ env "DECK_NAME" }}'))
    (wf,) = load_file_workflows(path)
    assert static_values(wf) == {"v": "from-env"}


def test_a_workflow_file_is_not_rendered(tmp_path, monkeypatch):
    """Only decK files go through decK: a plain workflow keeps `${{` as written."""
    monkeypatch.delenv("DECK_X", raising=False)
    path = tmp_path / "wf.yaml"
    path.write_text('nodes:\n  - name: V\n    type: static\n    values: {v: \'${{ env "DECK_X" }}\', f: _format_version}\n')
    (wf,) = load_file_workflows(path)
    assert static_values(wf) == {"v": '${{ env "DECK_X" }}', "f": "_format_version"}
