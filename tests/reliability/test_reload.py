"""Reloading: through a real mitmdump
watching a workflow directory (poll interval: the default 1 s).

- a YAML alias bomb or a file nested 1,000,000 deep dropped into the
  directory gives one clean error naming the file, is not retried while it
  stays unchanged, and never delays a steady stream of other flows by more
  than 100 ms (over the same stream's own baseline);
- a valid 5,000-node file loads without stalling other flows;
- a half-written file never takes effect (a guard never disappears);
- skipped entries (dangling symlink, FIFO, directory named *.yaml) are
  logged by name and reason, once per change.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from mitmdatakit.config import MAX_FILE_SIZE, load_text
from mitmdatakit.mock_server import Reply
from mitmdatakit.parsing import MAX_NESTING
from tests.harness import Mitmdump
from tests.reliability._support import rss_mb

POLL = 1.0  # the addon's default poll interval
STALL_LIMIT = 0.100  # seconds a reload may add to other flows' latency
STEADY = {"match": {"hosts": ["steady.test"]}, "nodes": [{"name": "EXIT", "type": "exit", "status": 200}]}

pytestmark = pytest.mark.timeout(180)


def alias_bomb(levels: int = 9) -> str:
    anchors = ['l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    anchors += [f"l{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "nodes:\n  - {name: BOMB, type: static, values: {" + ", ".join(anchors) + "}}\n"


def many_nodes(count: int) -> str:
    """A valid workflow of `count` nodes, for flows to another host."""
    nodes = "".join(f"  - {{name: S{i}, type: static, values: {{i: {i}}}}}\n" for i in range(count - 1))
    return f"match: {{hosts: [big.test]}}\nnodes:\n{nodes}  - {{name: EXIT, type: exit, status: 203}}\n"


def start(directory: Path, start_mitmdump) -> Mitmdump:
    directory.mkdir(exist_ok=True)
    (directory / "00-steady.yaml").write_text(yaml.safe_dump(STEADY))
    return start_mitmdump(directory, quiet=True)


class Stream:
    """GET http://HOST/ through the proxy every `interval` seconds from a
    thread (one keep-alive connection); records (status, latency)."""

    def __init__(self, mitm: Mitmdump, host: str = "steady.test", interval: float = 0.1, count: int = 50) -> None:
        self.mitm, self.url, self.interval, self.count = mitm, f"http://{host}/", interval, count
        self.results: list[tuple[int | str, float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(proxy=self.mitm.proxy_url, trust_env=False, timeout=30) as c:
            next_at = time.perf_counter()
            for _ in range(self.count):
                t0 = time.perf_counter()
                try:
                    status: int | str = c.get(self.url).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                self.results.append((status, time.perf_counter() - t0))
                next_at += self.interval
                time.sleep(max(0.0, next_at - time.perf_counter()))

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=120)

    def run(self) -> Stream:
        with self:
            pass
        return self

    @property
    def statuses(self) -> set[int | str]:
        return {s for s, _ in self.results}

    @property
    def worst(self) -> float:
        return max(t for _, t in self.results)


def assert_not_stalled(baseline: Stream, during: Stream) -> None:
    assert during.statuses == {200}, during.results
    assert len(during.results) == during.count
    # the baseline's own worst case is this machine's noise (2 cores shared
    # with other test runs); a reload may add at most STALL_LIMIT to it
    assert during.worst < baseline.worst + STALL_LIMIT, (
        f"worst latency {during.worst * 1000:.0f} ms during the reload vs {baseline.worst * 1000:.0f} ms before")


def count(mitm: Mitmdump, pattern: str) -> int:
    return len(re.findall(pattern, mitm.log_text()))


def write_while_streaming(mitm: Mitmdump, path: Path, text: str, done_pattern: str) -> tuple[Stream, Stream]:
    """A baseline stream, then the same stream while `text` is written to
    `path` and loaded (until `done_pattern` is logged)."""
    baseline = Stream(mitm).run()
    offset = mitm.log_offset()
    with Stream(mitm) as during:
        time.sleep(0.3)
        path.write_text(text)
        mitm.wait_for_log(done_pattern, timeout=60, since=offset)
    return baseline, during


@pytest.mark.slow  # 12-16 s: a real mitmdump under a reload stress
def test_alias_bomb_is_refused_once_without_stalling_other_flows(tmp_path, start_mitmdump):
    mitm = start(tmp_path / "wf", start_mitmdump)
    bomb = tmp_path / "wf" / "50-bomb.yaml"
    baseline, during = write_while_streaming(
        mitm, bomb, alias_bomb(), r"reload failed, still serving the previous workflows: \S*50-bomb\.yaml: invalid YAML: "
                                   r"YAML aliases expand the document by more than 100,000 nodes")
    assert_not_stalled(baseline, during)
    assert len(alias_bomb()) < 700  # the 668-byte bomb
    # no retry while the file stays unchanged
    failures = count(mitm, r"reload failed")
    time.sleep(3 * POLL)
    assert count(mitm, r"reload failed") == failures == 1
    assert Stream(mitm, count=3).run().statuses == {200}


@pytest.mark.slow  # 14 s each: a million-deep file parsed off the loop
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_file_nested_a_million_deep_is_a_clean_error(tmp_path, start_mitmdump, suffix):
    mitm = start(tmp_path / "wf", start_mitmdump)
    deep = tmp_path / "wf" / f"50-deep{suffix}"
    kind = "JSON" if suffix == ".json" else "YAML"
    baseline, during = write_while_streaming(
        mitm, deep, "[" * 1_000_000 + "]" * 1_000_000,
        rf"reload failed, still serving the previous workflows: \S*50-deep\{suffix}: invalid {kind}: "
        rf"nesting deeper than {MAX_NESTING}")
    assert_not_stalled(baseline, during)
    assert "RecursionError" not in mitm.log_text() and "Traceback" not in mitm.log_text()
    time.sleep(2 * POLL)
    assert count(mitm, r"reload failed") == 1
    assert mitm.is_running()


@pytest.mark.slow  # 12-16 s: a real mitmdump under a reload stress
def test_a_5000_node_file_is_refused_without_stalling_other_flows(tmp_path, start_mitmdump):
    """Kong allows at most 64 nodes in a workflow (its 3.15 schema): a
    5,000-node file is refused, and checking it never stalls other flows."""
    mitm = start(tmp_path / "wf", start_mitmdump)
    big = tmp_path / "wf" / "50-big.yaml"
    baseline, during = write_while_streaming(
        mitm, big, many_nodes(5000), r"reload failed, still serving the previous workflows: \S*50-big\.yaml: "
                                     r"field 'nodes': length must be at most 64 \(got 5000 entries\)")
    assert_not_stalled(baseline, during)
    assert mitm.is_running()


def jq_workflow(host: str, count: int) -> str:
    """A valid workflow of `count` nodes, most of them jq (compiled at load)."""
    nodes = "".join(f"  - {{name: J{i}, type: jq, input: request.headers, jq: '{{a{i}: .host, n: {i}}}'}}\n"
                    for i in range(count - 1))
    return f"match: {{hosts: [{host}]}}\nnodes:\n{nodes}  - {{name: EXIT, type: exit, status: 203}}\n"


@pytest.mark.slow
def test_5000_jq_nodes_in_80_files_load_without_stalling_other_flows(tmp_path, start_mitmdump):
    directory = tmp_path / "wf"
    mitm = start(directory, start_mitmdump)
    staging = tmp_path / "staging"
    staging.mkdir()
    for i in range(80):
        (staging / f"{50 + i:03d}-big.yaml").write_text(jq_workflow(f"big{i}.test", 63))
    baseline = Stream(mitm).run()
    offset = mitm.log_offset()
    with Stream(mitm) as during:
        time.sleep(0.3)
        for f in sorted(staging.iterdir()):
            f.rename(directory / f.name)  # whole files appear, one after another
        mitm.wait_for_log(r"loaded 81 workflow\(s\)", timeout=120, since=offset)
    assert_not_stalled(baseline, during)
    with mitm.client() as c:
        assert c.get("http://big79.test/").status_code == 203


# A guard, and the same file rewritten in two halves: the first half alone
# is a valid workflow that guards nothing (and matches every flow).
GUARD_V1 = "match: {hosts: [guard.test]}\nnodes:\n  - {name: DENY, type: exit, status: 401}\n"
FIRST_HALF = "nodes:\n  - {name: NOTE, type: static, values: {version: 2}}\n"
SECOND_HALF = "  - {name: DENY, type: exit, status: 401, inputs: {body: NOTE}}\nmatch: {hosts: [guard.test]}\n"


@pytest.mark.slow  # 12-16 s: a real mitmdump under a reload stress
def test_a_half_written_file_never_takes_effect(tmp_path, start_mitmdump):
    load_text(FIRST_HALF, "half.yaml")  # the half would load if it were read
    directory = tmp_path / "wf"
    directory.mkdir()
    guard = directory / "10-guard.yaml"
    guard.write_text(GUARD_V1)
    mitm = start(directory, start_mitmdump)
    # each rewrite leaves the half alone for `gap` of a 1 s poll: without the
    # stability wait, these four together load a half about 95% of the time
    for gap in (0.35, 0.6, 0.5, 0.6):
        offset = mitm.log_offset()
        with Stream(mitm, host="guard.test", interval=0.05, count=int((gap + 3 * POLL) / 0.05)) as stream, guard.open("w") as f:
            f.write(FIRST_HALF)
            f.flush()
            time.sleep(gap)
            f.write(SECOND_HALF)
        mitm.wait_for_log(r"loaded 2 workflow", timeout=10, since=offset)
        assert stream.statuses == {401}, stream.results
        guard.write_text(GUARD_V1)
        mitm.wait_for_log(r"loaded 2 workflow", timeout=10, since=mitm.log_offset() - 200)
    with mitm.client() as c:
        assert c.get("http://guard.test/").status_code == 401


def test_entries_that_are_not_workflows_are_skipped_or_refused(tmp_path, start_mitmdump):
    directory = tmp_path / "wf"
    directory.mkdir()
    (directory / "20-gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    os.mkfifo(directory / "30-pipe.yaml")
    (directory / "40-dir.yaml").mkdir()
    mitm = start(directory, start_mitmdump)
    log = mitm.log_text()
    assert re.search(r"skipped 20-gone\.yaml in \S+: dangling symbolic link", log)
    assert re.search(r"skipped 30-pipe\.yaml in \S+: a FIFO", log)
    assert re.search(r"skipped 40-dir\.yaml in \S+: a directory", log)
    assert count(mitm, "skipped 30-pipe.yaml") == 1

    offset = mitm.log_offset()
    os.mkfifo(directory / "50-new.json")
    mitm.wait_for_log(r"skipped 50-new\.json in \S+: a FIFO", timeout=10, since=offset)
    time.sleep(3 * POLL)
    assert count(mitm, "skipped 50-new.json") == 1
    assert count(mitm, "skipped 30-pipe.yaml") == 2  # logged again with that one change, not at every poll
    assert Stream(mitm, count=3).run().statuses == {200}

    # a data dump named *.json (over MAX_FILE_SIZE, 64 MiB) is refused after
    # reading at most that much, not read whole; the proxy serves on
    offset = mitm.log_offset()
    with (directory / "60-dump.json").open("wb") as f:
        f.write(b'{"nodes": [' + b" " * (MAX_FILE_SIZE + 1024) + b"]}")
    mitm.wait_for_log(r"60-dump\.json'? is larger than 67108864 bytes \(MAX_FILE_SIZE\)", timeout=20, since=offset)
    assert Stream(mitm, count=3).run().statuses == {200}
    assert rss_mb(mitm.pid) < 300  # the file was not held whole (nor decoded, nor parsed)


def redis_clients(redis_server) -> int:
    """Connections open to the redis-server, not counting the one asking."""
    return redis_server.command("CLIENT", "LIST").count(b"id=") - 1


def test_a_reload_keeps_the_resources_of_runs_in_flight(tmp_path, start_mitmdump, make_mock_server, redis_server):
    """Runs in flight keep the workflow they started with; its redis cache
    is closed once the last of them is done, not under them (which made
    the closed cache connect again and its connections leak for good)."""
    api = make_mock_server()
    api.route("GET", "/slow", Reply(json={"v": 1}, delay=3.5))

    def cached(version: str) -> str:
        return yaml.safe_dump({
            "match": {"hosts": ["cache.test"]},
            "resources": {"cache": {"strategy": "redis", "redis": {"host": "127.0.0.1", "port": redis_server.port}}},
            "nodes": [
                {"name": "API", "type": "call", "url": f"{api.url}/slow"},
                {"name": "KEY", "type": "jq", "input": "request.query", "jq": '"reload-" + .i'},
                {"name": "CACHE", "type": "cache", "inputs": {"key": "KEY", "data": "API"}},
                {"name": "VERSION", "type": "static", "values": {"x-version": version}},
                {"name": "EXIT", "type": "exit", "status": 200, "inputs": {"body": "CACHE", "headers": "VERSION"}},
            ],
        })

    directory = tmp_path / "wf"
    directory.mkdir()
    (directory / "10-cached.yaml").write_text(cached("old"))
    mitm = start_mitmdump(directory, quiet=True)
    flows = 20
    answers: list[tuple[int, str | None]] = []

    def one(i: int) -> None:
        with httpx.Client(proxy=mitm.proxy_url, trust_env=False, timeout=30) as c:
            r = c.get(f"http://cache.test/?i={i}")
            answers.append((r.status_code, r.headers.get("x-version")))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(flows)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    offset = mitm.log_offset()
    (directory / "10-cached.yaml").write_text(cached("new"))
    mitm.wait_for_log(r"Datakit: loaded 1 workflow", timeout=10, since=offset)
    for t in threads:
        t.join(30)
    assert answers == [(200, "old")] * flows  # stored by the workflow they started with
    deadline = time.monotonic() + 5
    while redis_clients(redis_server) > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_clients(redis_server) == 0  # the unloaded workflow's cache closed its connections
