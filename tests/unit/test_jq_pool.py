"""The jq worker pool in process: budget, crashes, queueing, loops, close."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from mitmdatakit.errors import JqError, JqTimeout, JqWorkerFailed
from mitmdatakit.jq_pool import JqPool


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def pool():
    p = JqPool(size=1)
    yield p
    p.close()


def test_results_errors_and_budget(pool):
    async def go():
        assert json.loads(await pool.run(".a, .b", b'{"a": 1, "b": [2]}', 1000)) == [1, [2]]
        with pytest.raises(JqError, match="boom"):
            await pool.run('error("boom")', b"null", 1000)
        t0 = time.monotonic()
        with pytest.raises(JqTimeout):
            await pool.run("def f: f; f", b"null", 200)
        assert 0.2 <= time.monotonic() - t0 < 2.0
        # the killed worker was replaced: the next program runs
        assert json.loads(await pool.run(".", b"7", 1000)) == [7]
    run(go())
    assert pool.replaced == 1


def test_a_crashing_worker_is_a_clean_error_and_replaced(pool):
    async def go():
        with pytest.raises(JqWorkerFailed, match="died"):
            await pool.run("reduce range(1000000) as $i (0; [.])", b"null", 30_000)
        assert json.loads(await pool.run(".", b"1", 1000)) == [1]
    run(go())


def test_waiting_programs_run_in_order_and_the_wait_is_not_budgeted(pool):
    async def go():
        slow = asyncio.create_task(pool.run("[range(3e6)] | length", b"null", 20_000))
        await asyncio.sleep(0.05)
        # waits behind `slow` (longer than its own 300 ms budget), then runs
        fast = await pool.run(". + 1", b"1", 300)
        assert json.loads(fast) == [2]
        assert json.loads(await slow) == [3000000]
    run(go())


def test_a_cancelled_waiting_program_never_runs(pool):
    async def go():
        busy = asyncio.create_task(pool.run("def f: f; f", b"null", 300))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(pool.run(". + 1", b"1", 1000))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not pool.waiting
        with pytest.raises(JqTimeout):
            await busy
    run(go())


def test_one_pool_serves_several_event_loops(pool):
    assert json.loads(run(pool.run(".", b"1", 1000))) == [1]
    assert json.loads(run(pool.run(".", b"2", 1000))) == [2]


def test_close_kills_every_worker_and_refuses_work():
    p = JqPool(size=2)
    run(p.run(".", b"1", 1000))
    pids = p.pids()
    assert pids
    p.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: not our child any more
    with pytest.raises(JqWorkerFailed, match="closed"):
        run(p.run(".", b"1", 1000))
