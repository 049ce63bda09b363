"""A jq worker process (started by `jq_pool`, never imported by the proxy).

libjq holds the GIL and cannot be interrupted, so jq programs run here, in
a process the proxy can kill. Self-contained on purpose: it is run as a
script (`python -P jq_worker.py`) and imports nothing from the package.

Protocol on stdin/stdout, little-endian frames:
  hello   worker -> proxy, once: b"J"
  request proxy -> worker: u32 budget_ms, u32 program length, u32 input
          length, the program (UTF-8), the input (JSON text, UTF-8)
  reply   worker -> proxy: u8 status, u32 length, payload
          status 0: JSON text of the list of results
          status 1: jq error message; status 2: result not representable
"""

from __future__ import annotations

import json
import signal
import struct
import sys
from functools import lru_cache

TYPE_CHECKING = False  # the worker starts faster without importing typing
if TYPE_CHECKING:
    from typing import Any

REQUEST = struct.Struct("<III")
REPLY = struct.Struct("<BI")
HELLO = b"J"
OK, JQ_ERROR, BAD_RESULT = 0, 1, 2

# The proxy kills a worker at the budget; this alarm is the backstop for a
# proxy that died without doing so (SIGALRM's default action ends us).
BACKSTOP_FACTOR = 2
BACKSTOP_EXTRA_S = 1.0
NICENESS = 10  # a long-running program yields the CPU to the proxy (set by the pool)

# Address space of a worker: a program that builds too much (`.[.n] = 1`
# with n = 5e8 asks jq for 8 GB) fails its allocation and the worker dies
# at once (the pool reports it and starts another), instead of taking the
# machine's memory until the time budget runs out.
MEMORY_LIMIT = 2 << 30


MAX_MESSAGE = 1000  # jq quotes the input in some errors: keep logs readable


def first_line(error: BaseException) -> str:
    """The error's first line, without libjq's own `jq: error: ` prefix
    (callers say "jq error" already) and the colon before the quoted source."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    line = line.removeprefix("jq: error: ").rstrip(":")
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE] + "..."


@lru_cache(maxsize=512)  # compiled once per worker, keyed by the source text
def _compiled(source: str) -> Any:  # a jq._Program (jq ships no types)
    import jq

    return jq.compile(source)


def _run(source: str, text: str) -> tuple[int, bytes]:
    try:
        results = _compiled(source).input_text(text).all()
    except ValueError as e:
        return JQ_ERROR, first_line(e).encode("utf-8", "replace")
    try:
        try:
            return OK, json.dumps(results, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escape it
            return OK, json.dumps(results).encode("ascii")
    except RecursionError:
        return BAD_RESULT, b"jq result is nested too deeply to return"
    except (ValueError, TypeError, MemoryError) as e:
        return BAD_RESULT, f"jq result cannot be returned: {first_line(e)}".encode("utf-8", "replace")


def main() -> None:
    # No PR_SET_PDEATHSIG: it fires when the *thread* that spawned us ends
    # (the pool spawns from short-lived executor threads). A dead proxy
    # closes our stdin (an idle worker exits) and the alarm ends a busy one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the proxy, which stops us
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass  # not POSIX, or a lower hard limit already: the time budget still holds
    import jq  # noqa: F401 - loaded before saying hello

    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    stdout.write(HELLO)
    stdout.flush()
    while True:
        header = stdin.read(REQUEST.size)
        if len(header) < REQUEST.size:
            return  # the proxy closed the pipe
        budget_ms, program_len, input_len = REQUEST.unpack(header)
        source = stdin.read(program_len).decode("utf-8")
        text = stdin.read(input_len).decode("utf-8")
        signal.setitimer(signal.ITIMER_REAL, budget_ms / 1000 * BACKSTOP_FACTOR + BACKSTOP_EXTRA_S)
        status, payload = _run(source, text)
        signal.setitimer(signal.ITIMER_REAL, 0)
        stdout.write(REPLY.pack(status, len(payload)) + payload)
        stdout.flush()


if __name__ == "__main__":
    main()
