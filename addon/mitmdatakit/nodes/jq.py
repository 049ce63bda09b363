"""`jq`: transform values with a jq filter (the real jq, through libjq).

Programs are compiled here once at load. A bounded program (`jq_bounds`:
no loops, recursion or regular expressions; time and output about linear
in its input) runs in process on inputs small enough for its growth; every other run goes to the
killable worker processes of `jq_pool`, under the `datakit_jq_timeout`
budget.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar

import jq

from ..codecs import json_text, json_text_ascii
from ..context import NodeContext
from ..errors import JqError, JqTimeout, JqWorkerFailed, NodeError
from ..jq_bounds import SLOW_RUN_SECONDS, SLOW_RUNS_TO_DEMOTE, in_process_limit
from ..jq_pool import DEFAULT_TIMEOUT_MS, JqPool
from ..jq_worker import first_line
from ..ports import SELF, Ports, PortType
from .base import Node, NodeSpec, WorkflowInfo, register

logger = logging.getLogger("mitmdatakit")

TIMEOUT_OPTION = "datakit_jq_timeout"
POOL_KEY = "jq_pool"


@register
class JqNode(Node):
    type_name = "jq"
    schema: ClassVar[Mapping[str, Any]] = {
        "properties": {
            "jq": {"type": "string", "minLength": 1, "maxLength": 10240, "description": "The jq filter."},
        },
        "required": ["jq"],
    }

    def __init__(self, spec: NodeSpec, workflow: WorkflowInfo) -> None:
        super().__init__(spec, workflow)
        self.source_text: str = spec.attrs["jq"]
        try:
            self.program = jq.compile(self.source_text)
        except ValueError as e:
            said = _first_line(e)  # libjq's "syntax error, unexpected ...": not twice
            raise self.config_error(f"jq {said}" if said.startswith("syntax error") else f"jq syntax error: {said}", field="jq") from None
        # largest input (JSON bytes) run in process; 0: the workers only
        self.input_limit = in_process_limit(self.source_text)
        self.in_process = self.input_limit > 0
        self._slow_runs = 0
        # with `inputs:` the filter sees an object of the named inputs
        self.named_inputs = tuple((spec.connections.get("inputs") or {}).keys())

    def input_ports(self) -> Ports:
        if self.named_inputs:
            return Ports(named={name: PortType.ANY for name in self.named_inputs}, dynamic=True)
        return Ports(self_type=PortType.ANY, dynamic=True)

    def output_ports(self) -> Ports:
        return Ports(self_type=PortType.ANY)

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """A plain result when the program runs here (no task, no wake-up),
        a coroutine when a worker runs it."""
        if SELF in inputs:
            data = inputs[SELF]
        else:
            data = {name: inputs.get(name) for name in self.named_inputs}
            for name, value in inputs.items():  # ports connected from the source side
                data.setdefault(name, value)
        try:
            text = json_text(data)
        except (ValueError, TypeError) as e:
            raise NodeError(f"jq error: {_first_line(e)}") from None
        except RecursionError:
            raise NodeError("jq error: the input is nested too deeply to encode as JSON") from None
        if self.in_process and _utf8_fits(text, self.input_limit):
            return {SELF: self._run_here(text, data)}
        return self._run_in_worker(_utf8(text, data), ctx)

    async def _run_in_worker(self, text: bytes, ctx: NodeContext) -> dict[str, Any]:
        services = ctx.services
        budget_ms = services.option_or(TIMEOUT_OPTION, DEFAULT_TIMEOUT_MS)
        pool: JqPool = services.shared(POOL_KEY, JqPool)
        try:
            results = json.loads(await pool.run(self.source_text, text, budget_ms))
        except JqError as e:
            raise NodeError(f"jq error: {e}") from None
        except JqTimeout:
            raise NodeError(f"jq program exceeded the time budget of {budget_ms} ms ({TIMEOUT_OPTION})") from None
        except JqWorkerFailed as e:
            raise NodeError(f"jq failed: {e}") from None
        except RecursionError:
            raise NodeError("jq failed: jq result is nested too deeply to return") from None
        return {SELF: _one_value(results)}

    def _clock(self, elapsed: float) -> None:
        """The safety net behind the static bounds: a program slow several
        runs in a row goes to the workers for good. One slow run is not
        enough: a garbage collection that happens during it counts too."""
        if elapsed <= SLOW_RUN_SECONDS:
            self._slow_runs = 0
            return
        self._slow_runs += 1
        if self._slow_runs >= SLOW_RUNS_TO_DEMOTE and self.in_process:
            self.in_process = False
            logger.warning("Datakit: jq node %r took %.0f ms of CPU in process %d runs in a row; "
                           "its program runs in the jq workers from now on", self.name, elapsed * 1000, self._slow_runs)

    def _run_here(self, text: str, data: Any) -> Any:
        # CPU time of this thread: a run the OS preempted is not a slow program
        started = time.thread_time()
        try:
            try:
                results = self.program.input_text(text).all()
            except UnicodeEncodeError:  # lone surrogates (lossless bodies): \uXXXX escapes instead
                results = self.program.input_text(json_text_ascii(data)).all()
        except ValueError as e:
            raise NodeError(f"jq error: {first_line(e)}") from None
        except RecursionError:
            raise NodeError("jq failed: jq result is nested too deeply to return") from None
        finally:
            elapsed = time.thread_time() - started
            if elapsed > SLOW_RUN_SECONDS or self._slow_runs:
                self._clock(elapsed)
        return results[0] if len(results) == 1 else _one_value(results)


def _utf8_fits(text: str, limit: int) -> bool:
    """Whether the UTF-8 form of `text` is at most `limit` bytes."""
    if len(text) > limit:
        return False
    return text.isascii() or len(text.encode("utf-8", "surrogatepass")) <= limit


def _utf8(text: str, data: Any) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: \uXXXX escapes instead
        return json_text_ascii(data).encode("ascii")


def _one_value(results: list[Any]) -> Any:
    if not results:
        return None
    if len(results) == 1:
        return results[0]
    return results


_first_line = first_line  # one way to word a jq error
