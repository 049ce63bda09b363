"""The `datakit_config` option changed at run time (mitmweb's options editor,
`--set` from the console, `ctx.options.update`): a value that does not load is
refused with OptionsError and the option keeps its old value, as mitmproxy's
own addons do; a value that loads serves at once."""

from __future__ import annotations

import pytest
from mitmproxy import exceptions

from tests.unit.addon_support import make_flow


@pytest.fixture
async def running(dk):
    """The addon past startup (the watcher polls; `done` stops it)."""
    dk.load("nodes: [{name: EXIT, type: exit, status: 201}]\n", name="old.yaml")
    dk.addon.running()
    return dk

async def exit_status(dk) -> int:
    flow = await dk.request(make_flow())
    return flow.response.status_code

@pytest.mark.parametrize(
    "make_value, message",
    [
        (lambda tmp: str(tmp / "missing.yaml"), r"no such file or directory: .*missing\.yaml"),
        (lambda tmp: _write(tmp / "bad.yaml", "nodes: [{name: X, type: nope}]\n"), r"bad\.yaml: .*nope"),
        (lambda tmp: _write(tmp / "bad.json", "{nodes: ["), r"bad\.json: invalid JSON"),
    ],
    ids=["missing", "unknown-node-type", "unparsable"],
)
async def test_an_invalid_value_is_refused_and_the_old_one_kept(running, make_value, message):
    old = running.tctx.options.datakit_config
    with pytest.raises(exceptions.OptionsError, match=message):
        running.tctx.options.update(datakit_config=make_value(running.tmp_path))
    assert running.tctx.options.datakit_config == old
    assert [w.name for w in running.addon.workflows] == ["old"]
    assert running.addon.config_path() == old
    assert await exit_status(running) == 201

async def test_a_valid_value_serves_at_once(running):
    new_dir = running.tmp_path / "new"
    new_dir.mkdir()
    _write(new_dir / "a.yaml", "nodes: [{name: EXIT, type: exit, status: 202}]\n")
    running.tctx.options.update(datakit_config=str(new_dir))
    assert [w.name for w in running.addon.workflows] == ["a"]  # no await: loaded in configure
    assert running.addon.config_path() == str(new_dir)
    assert await exit_status(running) == 202

async def test_a_refused_value_does_not_stop_later_changes(running):
    with pytest.raises(exceptions.OptionsError):
        running.tctx.options.update(datakit_config=str(running.tmp_path / "missing"))
    good = _write(running.tmp_path / "good.yaml", "nodes: [{name: EXIT, type: exit, status: 203}]\n")
    running.tctx.options.update(datakit_config=good)
    assert await exit_status(running) == 203

def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)
