"""Runs jq programs in worker processes, each under a time budget.

libjq holds the GIL and cannot be interrupted: a runaway program run in the
proxy would freeze every flow. Here each program runs in a worker process
(`jq_worker.py`); a worker that overruns its budget or crashes (a result
nested too deeply overflows libjq's C stack) is killed and replaced, and
the caller gets a clean error.

Loop-agnostic on purpose (offline runs and tests use several event loops):
workers are plain `subprocess.Popen` children; a job registers its pipe
with the running loop only while it runs. Jobs wait in FIFO order for a
free worker; only the run counts toward the budget, not the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

from .errors import JqError, JqTimeout, JqWorkerFailed
from .jq_worker import BAD_RESULT, HELLO, JQ_ERROR, MEMORY_LIMIT, NICENESS, OK, REPLY, REQUEST

logger = logging.getLogger("mitmdatakit")

WORKER_SCRIPT = Path(__file__).resolve().with_name("jq_worker.py")
DEFAULT_TIMEOUT_MS = 1000
READ_CHUNK = 1 << 16


# Workers run at the proxy's priority (a niced worker is starved by the
# proxy's own load: ordinary jq work would queue). A program still running
# after DEMOTE_AFTER_S is reniced (and, on Linux, put in SCHED_IDLE), so
# runaways yield the CPU to the proxy; as that cannot be undone
# unprivileged, the worker is retired afterwards.
DEMOTE_AFTER_S = 0.1


def default_pool_size() -> int:
    return max(2, min(4, os.cpu_count() or 2))


class _Job:
    __slots__ = ("budget_ms", "frame", "future")

    def __init__(self, frame: bytes, budget_ms: int, future: asyncio.Future[bytes]) -> None:
        self.frame = frame
        self.budget_ms = budget_ms
        self.future = future


class _Worker:
    """One worker process and the job it runs (if any)."""

    def __init__(self, pool: JqPool) -> None:
        self.pool = pool
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(WORKER_SCRIPT), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # PIPE
        self.pipes = (self.proc.stdin, self.proc.stdout)
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.greeted = False  # the hello arrived: the worker has loaded jq
        self.job: _Job | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.out = memoryview(b"")
        self.buf = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.demote_timer: asyncio.TimerHandle | None = None
        self.demoted = False
        self.dead = False

    # -- running one job ---------------------------------------------------

    def start(self, job: _Job) -> None:
        self.job = job
        self.loop = loop = asyncio.get_running_loop()
        self.buf.clear()
        self.out = memoryview(job.frame)
        loop.add_reader(self.rfd, self._readable)
        if self.greeted:
            self._start_clock()
        self._write()

    def _start_clock(self) -> None:
        assert self.job is not None and self.loop is not None
        self.timer = self.loop.call_later(self.job.budget_ms / 1000, self._overrun)
        if not self.demoted:
            self.demote_timer = self.loop.call_later(DEMOTE_AFTER_S, self._demote)

    def _demote(self) -> None:
        self.demote_timer = None
        try:
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, NICENESS)
            self.demoted = True
            # SCHED_IDLE (Linux): the runaway runs only when nothing else
            # wants the CPU, so it cannot slow the proxy on a busy machine;
            # lowering one's own priority needs no privilege
            if hasattr(os, "SCHED_IDLE"):
                os.sched_setscheduler(self.proc.pid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # already gone (or no SCHED_IDLE: the niceness stays)
    def _write(self) -> None:
        assert self.loop is not None  # set by start()
        try:
            while self.out:
                n = os.write(self.wfd, self.out)
                self.out = self.out[n:]
        except BlockingIOError:
            self.loop.add_writer(self.wfd, self._writable)
            return
        except OSError as e:  # the worker is gone; the reader sees EOF
            if e.errno != errno.EPIPE:
                logger.warning("Datakit: writing to a jq worker failed: %s", e)
            self.out = memoryview(b"")

    def _writable(self) -> None:
        assert self.loop is not None  # set by start()
        self.loop.remove_writer(self.wfd)
        self._write()

    def _readable(self) -> None:
        try:
            while True:
                chunk = os.read(self.rfd, READ_CHUNK)
                if not chunk:
                    self._crashed()
                    return
                self.buf += chunk
                if len(chunk) < READ_CHUNK:
                    break
        except BlockingIOError:
            pass
        if not self.greeted:
            if not self.buf.startswith(HELLO):
                return
            del self.buf[: len(HELLO)]
            self.greeted = True
            self._start_clock()
        if len(self.buf) < REPLY.size:
            return
        status, length = REPLY.unpack_from(self.buf)
        if len(self.buf) < REPLY.size + length:
            return
        payload = bytes(self.buf[REPLY.size: REPLY.size + length])
        job = self._finish()
        if status == OK:
            _settle(job, payload)
        else:
            message = payload.decode("utf-8", "replace")
            _settle(job, JqError(message) if status == JQ_ERROR else JqWorkerFailed(message))
            assert status in (JQ_ERROR, BAD_RESULT)
        if self.demoted:  # reniced for a long program: replace it with a fresh one
            self.kill(wait=False)
            self.pool._lost(self)
        else:
            self.pool._idle(self)

    def _finish(self) -> _Job:
        """Unhook from the loop; the job is over either way."""
        job, self.job = self.job, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.demote_timer is not None:
            self.demote_timer.cancel()
            self.demote_timer = None
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self.rfd)
            self.loop.remove_writer(self.wfd)
        self.loop = None
        self.out = memoryview(b"")
        assert job is not None
        return job

    def _overrun(self) -> None:
        self.timer = None
        job = self._finish()
        self.kill(wait=False)
        _settle(job, JqTimeout(job.budget_ms))
        self.pool._lost(self)

    def _crashed(self) -> None:
        job = self._finish()
        code = self.kill()
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        logger.error("Datakit: a jq worker died (%s) while running a program; replaced", how)
        _settle(job, JqWorkerFailed(f"the jq worker died ({how}), e.g. a result nested too deeply or over {MEMORY_LIMIT >> 30} GiB of memory"))
        self.pool._lost(self)

    # -- lifetime ------------------------------------------------------------

    def abandoned(self) -> bool:
        """Busy for an event loop that is gone (an offline run ended)."""
        return self.job is not None and (self.loop is None or self.loop.is_closed())

    def kill(self, wait: bool = True) -> int | None:
        """Kill the process; with `wait`, reap it and return its exit status.
        Without, it is reaped later from the loop: a killed runaway can take
        milliseconds to release its memory, which must not stall every flow."""
        if not self.dead:
            self.dead = True
            if self.job is not None:
                self._finish()
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
            for f in self.pipes:
                with contextlib.suppress(OSError):
                    f.close()
        if self.proc.poll() is not None:
            return self.proc.returncode
        if wait:
            try:
                return self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not wait for the program
                return None
        self._reap_later()
        return None

    def _reap_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: Popen reaps it when the next child starts

        def reap(delay: float) -> None:  # poll with backoff, up to a second apart
            if self.proc.poll() is None and not loop.is_closed():
                loop.call_later(delay, reap, min(delay * 2, 1.0))

        loop.call_later(0.01, reap, 0.02)


def _settle(job: _Job, outcome: bytes | BaseException) -> None:
    """Hand the job's caller its result, or the error to raise."""
    fut = job.future
    if fut.done() or fut.get_loop().is_closed():
        return  # the caller went away (its flow was cancelled)
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


class JqPool:
    """A small pool of jq worker processes, started lazily, killed at close."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or default_pool_size()
        self.workers: list[_Worker] = []
        self.free: list[_Worker] = []
        self.waiting: deque[_Job] = deque()
        self.starting = 0  # workers being spawned
        self._spawning: set[asyncio.Task[None]] = set()
        self.closed = False
        self.replaced = 0  # workers killed (overrun or crash) and replaced

    async def run(self, source: str, data: bytes, budget_ms: int) -> bytes:
        """Run `source` on the JSON text `data`; returns the JSON text of the
        list of results. Raises JqTimeout, JqError or JqWorkerFailed."""
        if self.closed:
            raise JqWorkerFailed("the jq worker pool is closed")
        program = source.encode("utf-8")
        frame = REQUEST.pack(budget_ms, len(program), len(data)) + program + data
        job = _Job(frame, budget_ms, asyncio.get_running_loop().create_future())
        self._dispatch(job)
        try:
            # shielded: a cancelled flow must not leave a worker half-way
            # through a frame; a started job finishes (or overruns) on its own
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            if job in self.waiting:  # never started: drop it
                self.waiting.remove(job)
                job.future.cancel()
            raise

    def _dispatch(self, job: _Job) -> None:
        for w in [w for w in self.workers if w.abandoned()]:
            self._remove(w)
            w.kill(wait=False)
        while self.free:
            w = self.free.pop()
            if w.proc.poll() is None:
                w.start(job)
                return
            self._remove(w)  # died while idle (killed from outside): replace it
            w.kill(wait=False)
            self.replaced += 1
        self.waiting.append(job)
        if len(self.workers) + self.starting < self.size:
            self._spawn()

    def _spawn(self) -> None:
        """Start a worker in a thread: Popen waits for the child's exec,
        which takes milliseconds on a busy machine; the loop must not."""
        self.starting += 1
        task = asyncio.get_running_loop().create_task(self._start_worker())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _start_worker(self) -> None:
        try:
            worker = await asyncio.to_thread(_Worker, self)
        except OSError as e:
            self.starting -= 1
            logger.error("Datakit: cannot start a jq worker: %s", e)
            if self.waiting:
                _settle(self.waiting.popleft(), JqWorkerFailed(f"cannot start a jq worker: {e}"))
            return
        except BaseException:
            self.starting -= 1
            raise
        self.starting -= 1
        if self.closed:
            worker.kill()
            return
        self.workers.append(worker)
        self._idle(worker)

    def _idle(self, worker: _Worker) -> None:
        while self.waiting:
            job = self.waiting.popleft()
            if not job.future.done() and not job.future.get_loop().is_closed():
                worker.start(job)
                return
        self.free.append(worker)

    def _lost(self, worker: _Worker) -> None:
        self._remove(worker)
        self.replaced += 1
        if not self.closed and len(self.workers) + self.starting < self.size:
            self._spawn()  # replaced at once, warm for the next program

    def _remove(self, worker: _Worker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        if worker in self.free:
            self.free.remove(worker)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers]

    def close(self) -> None:
        """Kill every worker (and fail whatever still waits)."""
        self.closed = True
        for w in list(self.workers):
            job = w.job
            w.kill()
            if job is not None:
                _settle(job, JqWorkerFailed("the jq worker pool was closed"))
        self.workers.clear()
        self.free.clear()
        while self.waiting:
            _settle(self.waiting.popleft(), JqWorkerFailed("the jq worker pool was closed"))

    async def aclose(self) -> None:
        self.close()

    def __del__(self) -> None:  # an owner that never closed us: no orphans
        if not self.closed:
            self.close()
