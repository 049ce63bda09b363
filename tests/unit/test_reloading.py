"""Reload details: when a change is loaded, the parser's bounds, and
failures that are not ConfigErrors (see tests/reliability/test_reload.py
for the same through a real mitmdump)."""

from __future__ import annotations

import pytest

from mitmdatakit import reloading
from mitmdatakit.config import load_text
from mitmdatakit.errors import ConfigError
from mitmdatakit.parsing import MAX_ALIAS_EXPANSION, MAX_NESTING, parse_text
from mitmdatakit.reloading import ChangeDetector, load_outcome, snapshot


def test_a_change_loads_only_when_the_next_poll_sees_it_unchanged():
    d = ChangeDetector()
    d.loaded_from("v1")
    assert not d.should_load("v1")
    assert not d.should_load("half")  # first sight of a change
    assert not d.should_load("v2")  # still changing
    assert d.should_load("v2")  # stable for one poll
    d.loaded_from("v2")
    assert not d.should_load("v2")  # loaded (or failed): never retried unchanged


def test_snapshot_sees_size_and_new_entries(tmp_path):
    (tmp_path / "a.yaml").write_text("x")
    first = snapshot(tmp_path)
    assert snapshot(tmp_path) == first
    (tmp_path / "a.yaml").write_text("xy")
    second = snapshot(tmp_path)
    assert second != first
    (tmp_path / "ignored.txt").write_text("x")
    assert snapshot(tmp_path) == second
    (tmp_path / "b.json").write_text("{}")
    assert snapshot(tmp_path) != second


def nested_yaml(depth: int) -> str:
    return "nodes:\n  - {name: X, type: static, values: {a: " + "[" * depth + "]" * depth + "}}\n"


def test_nesting_limit_is_exact():
    load_text(nested_yaml(MAX_NESTING - 4), "ok.yaml")  # the document, nodes, node, values: 4 levels
    with pytest.raises(ConfigError, match=rf"^deep\.yaml: invalid YAML: nesting deeper than {MAX_NESTING}$"):
        load_text(nested_yaml(MAX_NESTING - 3), "deep.yaml")
    parse_text("[" * MAX_NESTING + "]" * MAX_NESTING, "ok.json", is_json=True)
    with pytest.raises(ConfigError, match=rf"^deep\.json: invalid JSON: nesting deeper than {MAX_NESTING}$"):
        parse_text("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1), "deep.json", is_json=True)


def test_nesting_through_an_alias_counts():
    inner = "[" * 60 + "]" * 60
    with pytest.raises(ConfigError, match="nesting deeper than"):
        parse_text(f"a: &a {inner}\nb: {'[' * 50}*a{']' * 50}\n", "alias.yaml")


def test_alias_expansion_limit():
    # 10 aliases of a 10,000-item list add 100,000 nodes: allowed; one more is not
    items = "[" + ",".join(["1"] * (MAX_ALIAS_EXPANSION // 10 - 1)) + "]"
    parse_text(f"a: &a {items}\nb: [{','.join(['*a'] * 10)}]\n", "ok.yaml")
    with pytest.raises(ConfigError, match="aliases expand the document by more than 100,000 nodes"):
        parse_text(f"a: &a {items}\nb: [{','.join(['*a'] * 11)}]\n", "bomb.yaml")


def test_recursive_alias_is_refused():
    with pytest.raises(ConfigError, match="recursive alias"):
        parse_text("a: &a [1, *a]\n", "loop.yaml")


def test_parser_messages_are_cut():
    with pytest.raises(ConfigError) as info:
        parse_text("a: " + "x" * 5000 + "\n  b: [", "long.yaml")
    assert len(str(info.value)) < 600


@pytest.mark.parametrize("error", [MemoryError(), RecursionError("maximum recursion depth exceeded"), KeyError("bug")])
def test_any_exception_becomes_an_outcome_naming_the_file(tmp_path, monkeypatch, error):
    (tmp_path / "a.yaml").write_text("nodes: [{name: E, type: exit}]\n")

    def boom(path):
        raise error

    monkeypatch.setattr(reloading, "load_file_workflows", boom)
    outcome = load_outcome(tmp_path)
    assert outcome.workflows is None
    assert outcome.error.startswith(f"{tmp_path / 'a.yaml'}: {type(error).__name__} while loading")
    assert "Traceback" in outcome.traceback
