"""Which jq programs run in process (`jq_bounds`), and that running there
gives exactly what the workers give."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging

import jq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mitmdatakit import jq_bounds
from mitmdatakit.errors import JqError, NodeError
from mitmdatakit.jq_bounds import INPUT_LIMIT, OUTPUT_BUDGET, in_process_limit, is_bounded
from mitmdatakit.jq_pool import JqPool
from mitmdatakit.nodes.base import NodeSpec, WorkflowInfo
from mitmdatakit.nodes.jq import JqNode

BOUNDED = [
    ".",
    '.tenant + "-" + .tier',
    '{"x-bench-tag": .tag, "x-tenant": .settings.tenant}',
    "{ author: .input1.slideshow.author, uuid: .input2.uuid }",  # Kong's "combine two APIs"
    '.headers * {"x-a": "1"}',  # object merge
    '{"x-b": "2"} * .headers',
    '"Bearer \\(.token)"',
    '@base64 "\\(.user):\\(.password)"',
    ".items | map(.id)",
    '.path | split("/")',
    "[.[] | .x]",
    "if .a then .b elif .c then .d else .e end",
    '.x // "default"',
    "{(.k): .v}",
    '.headers | del(.["content-length"])',
    "to_entries | map(select(.value != null)) | from_entries",
    "{if: 1, then: 2}",  # keywords as object keys
    ".count - 1",
    "try .a catch null",
    "# a comment with range(1e9)\n.a",
    '"range(1e9) in a string"',
    ".a = 1",  # assignments to fields, string keys and small literal indexes
    '.tags = ["a"]',
    ".[0] = 1",
    '.["x"] |= . + 1',
    ".[] += 1",
    "{a: (.a | tostring), b: (.b | tostring), c: .c}",
    '[.[] | tostring] | join(",")',
]

UNBOUNDED = [
    "def f: f; f",  # recursion
    "[range(1e7)] | length",
    "repeat(.)",
    "recurse(. + 1)",
    "until(. > 3; . + 1)",
    "reduce .[] as $x (0; . + $x)",  # bindings
    ". as [$a] ?// $a | $a",
    "$x",
    ".a * .b",  # may repeat a string
    '"x" * 1000',
    ". - .",  # array difference: quadratic
    "contains(.)",
    "indices(.)",
    ".[] + .[]",  # two generators: a product
    "{a: .x[], b: .y[]}",
    ".[] | .[]",
    ".. | numbers",  # quadratic paths on deep input
    "[paths]",
    "tostream",
    'test("a+")',  # regular expressions
    'split("a"; "g")',
    'sub("a"; "b")',
    "input",
    "combinations",
    "limit(3; .[])",
    "IN(.[]; 1)",
    "walk(.)",
    '"a\\(range(10))"',  # code inside an interpolation counts
    'import "a" as a; .',
    "some_future_builtin",  # unknown: the workers
    '"unterminated',
    " | ".join(["[., .]"] * 40),  # no loop, but 2^40 values: growth
    " | ".join(["tojson"] * 12),  # escapes double the backslashes every time
    " | ".join(['"\\(.)\\(.)"'] * 20),
    " | ".join([". + ."] * 30),
    ".x[.n] = 1",  # jq pads an array up to the index it writes
    ".[100000000] = 1",
    ".a[1:3] = [1]",
    "nth(100000000) = 1",
    "getpath([100000000]) = 1",
    "setpath([100000000]; 1)",
    "pick(.[100000000])",
    "join(.separator)",  # a separator from the input: quadratic
    "[" * 3000 + "." + "]" * 3000,  # nested deeper than the analysis looks
    '"' + "\\(" * 1500 + "." + ")" * 1500 + '"',
]


@pytest.mark.parametrize("source", BOUNDED)
def test_bounded_programs(source):
    assert is_bounded(source)


@pytest.mark.parametrize("source", UNBOUNDED)
def test_unbounded_programs(source):
    assert not is_bounded(source)


def _node(source: str, inputs: dict | None = None) -> JqNode:
    connections = {"inputs": inputs} if inputs else {"input": "request.body"}
    spec = NodeSpec(name="J", type="jq", index=1, attrs={"jq": source}, connections=connections)
    return JqNode(spec, WorkflowInfo(name="wf", source="<test>", resources={}, raw_resources={}, upstreams={}))


async def _call(node: JqNode, inputs: dict, ctx) -> dict:
    """A jq node's result: plain when it ran in process, awaited otherwise."""
    result = node.run(inputs, ctx)
    return await result if inspect.isawaitable(result) else result


class _Ctx:
    def __init__(self, pool: JqPool) -> None:
        self.services = self

        self._pool = pool

    def option_or(self, name, default):
        return default

    def shared(self, key, factory):
        return self._pool


INPUTS = [
    {"tenant": "acme", "tier": "gold", "tag": "t", "settings": {"tenant": "a"}, "k": "key", "v": [1, 2]},
    {"items": [{"id": 1}, {"id": "x"}, {}], "path": "/a/b//c", "headers": {"x-a": "0", "content-length": "3"}},
    {"a": None, "c": False, "e": 1.5, "count": 3, "token": "tok\u00e9\udcff", "user": "u", "password": "p"},
    [{"x": 1}, {"x": [None]}, 3],
    "a string",
]


def test_in_process_runs_equal_the_workers():
    """Every bounded program on every input: the same value, or the same
    error, in process and in a worker."""
    pool = JqPool(size=1)

    async def both(node: JqNode, data):
        ctx = _Ctx(pool)
        node.in_process = True
        try:
            here = ("ok", (await _call(node, {"$self": data}, ctx))["$self"])
        except NodeError as e:
            here = ("error", str(e))
        node.in_process = False
        try:
            there = ("ok", (await _call(node, {"$self": data}, ctx))["$self"])
        except NodeError as e:
            there = ("error", str(e))
        return here, there

    try:
        for source in BOUNDED:
            node = _node(source)
            for data in INPUTS:
                here, there = asyncio.run(both(node, data))
                assert json.dumps(here, sort_keys=True) == json.dumps(there, sort_keys=True), (source, data)
    finally:
        pool.close()


def test_large_inputs_and_unbounded_programs_go_to_the_workers():
    class Pool:
        calls = 0

        async def run(self, source, text, budget_ms):
            Pool.calls += 1
            return b"[1]"

    ctx = _Ctx(Pool())  # type: ignore[arg-type]
    node = _node(".a")
    assert node.in_process
    assert node.run({"$self": {"a": 2}}, ctx) == {"$self": 2} and Pool.calls == 0  # a plain result: no task
    big = {"a": "x" * INPUT_LIMIT}
    assert asyncio.run(_call(node, {"$self": big}, ctx)) == {"$self": 1} and Pool.calls == 1
    node = _node("def f: f; f")
    assert not node.in_process
    assert asyncio.run(_call(node, {"$self": 1}, ctx)) == {"$self": 1} and Pool.calls == 2


def test_a_slow_in_process_run_sends_the_program_to_the_workers(monkeypatch, caplog):
    monkeypatch.setattr(jq_bounds, "SLOW_RUN_SECONDS", 0.0)
    monkeypatch.setattr("mitmdatakit.nodes.jq.SLOW_RUN_SECONDS", 0.0)
    node = _node("[.[] | tostring] | join(\",\")")
    assert node.in_process
    data = list(range(100))
    text = json.dumps(data)
    with caplog.at_level(logging.WARNING, logger="mitmdatakit"):
        for _ in range(jq_bounds.SLOW_RUNS_TO_DEMOTE - 1):  # a garbage collection may slow one run
            assert node._run_here(text, data).startswith("0,1,2")
        assert node.in_process
        assert node._run_here(text, data).startswith("0,1,2")
    assert not node.in_process
    assert "runs in the jq workers from now on" in caplog.text


def test_in_process_errors_read_as_the_workers_do():
    node = _node('error("boom")')
    with pytest.raises(NodeError, match=r"^jq error: boom"):
        node._run_here("null", None)
    pool = JqPool(size=1)
    try:
        with pytest.raises(JqError, match="boom"):
            asyncio.run(pool.run('error("boom")', b"null", 1000))
    finally:
        pool.close()


# stages that take any JSON value, each growing it in its own way
_STAGES = [
    "[., .]", "{a: ., b: .}", "[.[]?, .]", "tojson", "tostring", '"\\(.)-\\(.)"', "[.] | to_entries",
    "tojson | @sh", "tojson | @html", "tojson | @uri", "tojson | @base64", "tojson | @json", "tojson | explode",
    'tojson | split(",")', "[., .] | group_by(.)", "[.] | flatten", "[tojson] | join(\"--\")", "[.] | tojson | fromjson",
]
_NASTY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.text(alphabet="a\"\\\x00'&%\u00e9<", max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(alphabet="k\"", max_size=2), inner, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(stages=st.lists(st.sampled_from(_STAGES), min_size=1, max_size=4), data=_NASTY)
def test_growth_bounds_what_a_program_builds(stages, data):
    """What a program in process builds is at most its input limit's worth:
    (input + program) x growth <= OUTPUT_BUDGET, measured with jq itself on
    inputs full of characters that escapes and formats multiply."""
    source = " | ".join(stages)
    limit = in_process_limit(source)
    if limit == 0:
        return  # the workers run it
    factor = jq_bounds.growth(jq_bounds._tokens(source))
    assert (limit + len(source)) * factor <= OUTPUT_BUDGET
    text = json.dumps(data)  # (also beyond the limit: the bound itself is checked)
    out = len(json.dumps(jq.compile(source).input_text(text).all()))
    assert out <= (len(text) + len(source)) * factor, (source, text, out, factor)
