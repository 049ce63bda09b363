"""The mitmproxy side: options, reloading, and the request/response hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mitmproxy import addonmanager, connection, ctx, exceptions, http

from . import bodies
from .commands import DatakitCommands, describe, register_view, unregister_view
from .disconnects import watch_disconnects
from .engine import Engine
from .hosts import ClientHost
from .jq_pool import DEFAULT_TIMEOUT_MS as DEFAULT_JQ_TIMEOUT_MS
from .kong.gateway import NO_ROUTE_OPTION, KongGateway
from .redaction import LOG_FILTER
from .reloading import POLL_INTERVAL, ChangeDetector, Outcome, Snapshot, load_outcome, snapshot
from .restore import ResponseRestorer
from .runtime import Services, option_value
from .workflow import Workflow

logger = logging.getLogger("mitmdatakit")

RELOAD_INTERVAL = POLL_INTERVAL
RETIRE_POLL = 0.5  # seconds between looks for runs still using unloaded workflows
MITMPROXY_DEFAULT_CONFDIR = "~/.mitmproxy"


PACKAGED_WORKFLOWS = Path(__file__).resolve().parent / "workflows"  # in a wheel (pyproject: force-include)
CHECKOUT_WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"  # in the repository


def default_config_path() -> str:
    """The example workflows: shipped inside the package when it is installed
    from a wheel, the repository's `workflows/` in a checkout."""
    return str(PACKAGED_WORKFLOWS if PACKAGED_WORKFLOWS.is_dir() else CHECKOUT_WORKFLOWS)


class Datakit(DatakitCommands):
    """Runs Datakit workflows on the flows passing through mitmproxy."""

    def __init__(self, default_config: str | None = None, certs_dir: str | None = None) -> None:
        self.default_config = default_config or default_config_path()
        self.certs_dir = certs_dir
        self._debug_all = False  # datakit_debug, kept here: read on every flow
        self.engine = Engine(Services(option=self._option), debug=lambda: self._debug_all)
        self._is_running = False
        self._watcher: asyncio.Task[None] | None = None
        self._disconnect_watcher: asyncio.Task[None] | None = None
        self._config_path: str | None = None
        self.last_reload_error: str | None = None
        self.client_host = ClientHost()  # match.hosts sees the client's Host in reverse mode
        self.stream_guard = StreamGuard(self.engine)
        self.kong = KongGateway(lambda: bool(self._option(NO_ROUTE_OPTION)))
        self.restorer = ResponseRestorer()  # appended to mitmproxy's chain in running
        self._added_restorer = False
        self.addons: list[Any]  # child addons: only Kong's gateway, while a decK file is loaded (_choose_hooks)
        self._host_in_request = False  # the reverse-mode Host rewrite runs in `request` (_choose_hooks)
        self._changes = ChangeDetector()
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._retired: list[Workflow] = []  # unloaded, closed once no run in flight uses them
        # one thread of its own: a slow load never takes a thread from
        # mitmproxy's default executor (DNS lookups run there)
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datakit-reload")

    # -- options and loading -----------------------------------------------

    def load(self, loader: addonmanager.Loader) -> None:
        register_view()
        loader.add_option(
            "datakit_config", str, self.default_config,
            "Datakit workflow file, or a directory of *.yaml, *.yml and *.json workflows (loaded in name order).",
        )
        loader.add_option(
            "datakit_debug", bool, False,
            "Enable Datakit tracing for every workflow, as if each had `debug: true`.",
        )
        loader.add_option(
            bodies.OPTION, str, bodies.DEFAULT_LIMIT_TEXT,
            "Largest body Datakit reads (request, service response, call responses), counted after "
            "decompression, in mitmproxy's size syntax (10m, 512k). A larger body fails the node that reads it.",
        )
        loader.add_option(
            "datakit_jq_timeout", int, DEFAULT_JQ_TIMEOUT_MS,
            "Time budget of one jq program run, in milliseconds; a program that runs longer "
            "is killed and its node fails (the client gets a 500).",
        )
        loader.add_option(
            NO_ROUTE_OPTION, bool, False,
            "With a Kong declarative file loaded: answer flows that none of its routes match with Kong's "
            '404 {"message":"no Route matched with those values"} instead of passing them through.',
        )

    def _choose_hooks(self) -> None:
        """Hooks that only some set-ups need are present only then: mitmproxy
        pays on every flow for every hook an addon has, and on every event
        for every level of child addons (it walks them live, per event). So
        the client-Host and streaming hooks are set on this instance, by
        name, when the options call for them (mitmproxy looks hooks up with
        getattr), and Kong's gateway is a child addon only while a decK
        file is loaded.

        The reverse-mode Host rewrite (`ClientHost`) runs at
        `requestheaders` when something else needs that hook (streaming,
        Kong's router, which route on the client's Host there); otherwise
        at the start of `request`, before a workflow is selected, which
        spares every flow a hook call. The upstream sees the same request
        either way."""
        streaming = bool(getattr(ctx.options, "stream_large_bodies", None))  # (absent in some test contexts)
        kong = bool(self.kong.routers)
        hooks: dict[str, list[Callable[[Any], None]]] = {name: [] for name in OPTIONAL_HOOKS}
        self._host_in_request = False
        if self.client_host.rewrite:  # reverse mode: first, selection needs the client's Host
            hooks["server_connect"].append(self.client_host.server_connect)
            if streaming or kong:
                hooks["requestheaders"].append(self.client_host.requestheaders)
            else:
                self._host_in_request = True
        if streaming:
            hooks["requestheaders"].append(self.stream_guard.requestheaders)
            hooks["responseheaders"].append(self.stream_guard.responseheaders)
        for name, handlers in hooks.items():
            if not handlers:
                vars(self).pop(name, None)
            else:
                setattr(self, name, handlers[0] if len(handlers) == 1 else _in_turn(handlers))
        if kong:
            self.addons = [self.kong]
        else:  # no `addons` at all: one level less for mitmproxy to walk on every event
            vars(self).pop("addons", None)

    def configure(self, updated: set[str]) -> None:
        if not self._is_running and self.certs_dir and ctx.options.confdir == MITMPROXY_DEFAULT_CONFDIR:
            # keep the CA with the project (certs/), unless the user chose a confdir
            ctx.options.update(confdir=self.certs_dir)
        if not self._is_running and "connection_strategy" in updated and ctx.options.connection_strategy == "eager":
            # workflows answer hosts that have no server: mitmproxy must not
            # connect upstream (and fail the CONNECT) before the workflow ran
            ctx.options.update(connection_strategy="lazy")
        if "datakit_debug" in updated:
            self._debug_all = bool(ctx.options.datakit_debug)
        self.client_host.options_changed(ctx.options, updated)
        if updated & {"mode", "keep_host_header", "stream_large_bodies"}:
            self._choose_hooks()
        if bodies.OPTION in updated:
            try:
                self.engine.services.body_size_limit = bodies.parse_limit(getattr(ctx.options, bodies.OPTION))
            except ValueError as e:
                raise exceptions.OptionsError(str(e)) from None
        if "datakit_jq_timeout" in updated and ctx.options.datakit_jq_timeout <= 0:
            raise exceptions.OptionsError("datakit_jq_timeout must be a positive number of milliseconds")
        if "datakit_config" in updated:
            if self._is_running:
                self._switch_config(ctx.options.datakit_config)
            else:
                # at startup mitmproxy serves only after configure: load now,
                # so that the first flow already sees the workflows (an
                # invalid file is logged, and mitmdump's ErrorCheck exits)
                self._config_path = ctx.options.datakit_config
                self.reload(initial=True)

    def running(self) -> None:
        self._is_running = True
        self._sync_restorer()
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        if self._disconnect_watcher is None:
            self._disconnect_watcher = asyncio.get_running_loop().create_task(watch_disconnects(self.engine))

    async def done(self) -> None:
        unregister_view()
        self._remove_restorer()
        for task in (self._watcher, self._disconnect_watcher, *self._background):
            if task is not None:
                task.cancel()
        self._loader.shutdown(wait=False, cancel_futures=True)
        await self.engine.aclose()
        retired, self._retired = self._retired, []
        await self._close([*retired, *self.workflows])
        await self.engine.services.aclose()

    def _sync_restorer(self) -> None:
        """The restorer costs every flow its hook calls: it is in mitmproxy's
        chain only while a loaded workflow sends values derived from a
        secret to the client (`Plan.secret_response_writes`), and leaves it
        once none does and it holds no response."""
        if not self._is_running:
            return
        needed = any(wf.plan.secret_response_writes for wf in self.engine.workflows)
        if needed and self.engine.restorer is None:
            if not self.restorer.active:  # removed before: mitmproxy called its done
                self.restorer = ResponseRestorer()
            self._add_restorer()
        elif not needed and self._added_restorer and self.restorer.idle:
            self._remove_restorer()

    def _add_restorer(self) -> None:
        """Append the restorer to the END of mitmproxy's chain, after Save,
        SaveHar, the dumper and mitmweb's view (all present by now): then
        they record the scrubbed response and the client gets the real one.
        One restorer serves every Datakit instance: a second one (or a
        reloaded script whose old instance never got `done`) shares it."""
        addons = ctx.master.addons
        existing = addons.get(ResponseRestorer.name)
        if isinstance(existing, ResponseRestorer) and existing.active:
            self.restorer = existing
        elif existing is None:
            addons.add(self.restorer)
            self._added_restorer = True
        else:
            logger.error("Datakit: an addon named %s is in the way; responses built from vault secrets are "
                         "recorded as sent", ResponseRestorer.name)
            return
        self.engine.restorer = self.restorer

    def _remove_restorer(self) -> None:
        self.engine.restorer = None
        addons = ctx.master.addons
        if self._added_restorer and self.restorer in addons.chain:
            addons.remove(self.restorer)  # its done: sent responses scrubbed again, inactive
        self._added_restorer = False

    def config_path(self) -> str:
        return self._config_path or self.default_config

    def reload(self, initial: bool = False) -> bool:
        """Load the configured workflows now, in this thread; keep the old
        ones if that fails. (At run time the addon loads off the loop.)"""
        path = self.config_path()
        seen = snapshot(path)
        outcome = load_outcome(path)
        self._changes.loaded_from(seen)
        return self._apply(path, outcome, initial)

    def _switch_config(self, path: str) -> None:
        """The option changed at run time: load the new path now, in
        `configure`, and refuse it with OptionsError if it does not load
        (mitmproxy then rolls the option back to the old value, and the old
        workflows keep serving). Loading here, on the event loop, is the
        price of answering the user synchronously, as the `datakit.reload`
        command does; edits on disk are loaded off the loop by the watcher."""
        if path == self._config_path:
            return  # mitmproxy's rollback re-announces the value still serving
        seen = snapshot(path)
        outcome = load_outcome(path)
        if outcome.workflows is None:
            if outcome.traceback:
                logger.error("Datakit: %s", outcome.traceback.rstrip())
            raise exceptions.OptionsError(f"Datakit: invalid workflow configuration: {outcome.error}")
        self._config_path = path
        self._changes.loaded_from(seen)
        self._apply(path, outcome, initial=False)

    async def _reload_off_loop(self, path: str, seen: Snapshot) -> bool:
        outcome = await self._off_loop(load_outcome, path)
        if path != self.config_path():
            # the option changed while this load ran: the new path is serving
            if outcome.workflows:
                self._spawn(self._close(outcome.workflows))
            return False
        self._changes.loaded_from(seen)
        return self._apply(path, outcome, initial=False)

    async def _off_loop[*Args, T](self, fn: Callable[[*Args], T], *args: *Args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._loader, fn, *args)

    def _apply(self, path: str, outcome: Outcome, initial: bool) -> bool:
        """Swap in the loaded workflows (on the event loop), or log why not."""
        for entry in outcome.skipped:
            logger.warning("Datakit: skipped %s in %s: %s", entry.name, path, entry.reason)
        if outcome.workflows is None:
            self.last_reload_error = str(outcome.error)
            if initial:
                logger.error("Datakit: invalid workflow configuration: %s", outcome.error)
            else:
                logger.error("Datakit: reload failed, still serving the previous workflows: %s", outcome.error)
            if outcome.traceback:
                logger.error("Datakit: %s", outcome.traceback.rstrip())
            return False
        workflows = outcome.workflows
        old, self.engine.workflows = self.engine.workflows, workflows
        self.kong.use(workflows)
        self._choose_hooks()  # Kong's gateway is there exactly while a decK file is loaded
        self._sync_restorer()
        self.last_reload_error = None
        # old and new: a closing workflow may still log
        LOG_FILTER.use([s for wf in (*old, *workflows) for s in wf.secrets])
        logger.info("Datakit: loaded %d workflow(s) from %s in %.2f s: %s", len(workflows), path, outcome.seconds, describe(workflows))
        if old:
            self._retired.extend(old)
            self._spawn(self._close_when_unused(old))
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            try:
                async with self._reload_lock:
                    path = self.config_path()
                    current = await self._off_loop(snapshot, path)
                    if self._changes.should_load(current):
                        logger.info("Datakit: workflow files changed, reloading")
                        await self._reload_off_loop(path, current)
            except Exception:  # the watcher must survive anything
                logger.exception("Datakit: watching the workflow files failed")

    async def _close_when_unused(self, workflows: Sequence[Workflow]) -> None:
        """Close unloaded workflows once no run in flight uses them: a run
        keeps the workflow it started with, and closing its resources
        under it (a redis cache) failed its next cache operation or made
        the closed cache connect again, for good."""
        ids = {id(wf) for wf in workflows}
        while any(id(run.workflow) in ids for run in self.engine.runs.values()):
            await asyncio.sleep(RETIRE_POLL)
        self._retired = [wf for wf in self._retired if id(wf) not in ids]
        await self._close(workflows)

    async def _close(self, workflows: Sequence[Workflow]) -> None:
        for wf in workflows:
            try:
                await wf.aclose()
            except Exception:  # one failing close must not keep the others open
                logger.exception("Datakit: closing workflow %s failed", wf.name)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._background.add(task)  # a task nobody references may be collected
        task.add_done_callback(self._background.discard)

    def _option(self, name: str) -> Any:
        options = getattr(ctx, "options", None)  # unset outside a running mitmproxy
        return option_value(options, name)

    @property
    def workflows(self) -> Sequence[Workflow]:
        return self.engine.workflows

    # -- flows: the engine does the work -----------------------------------

    # one coroutine per hook: the engine's own only when a node must be waited for
    async def request(self, flow: http.HTTPFlow) -> None:
        if self._host_in_request:
            self.client_host.requestheaders(flow)
        pending = self.engine.start_request(flow)[1]
        if pending is not None:
            await pending

    @property
    def response(self) -> Callable[[http.HTTPFlow], Coroutine[Any, Any, None]] | None:
        """The response hook, there only while a run awaits the upstream's
        response: mitmproxy looks a hook up on every event and skips one
        that is None, so the flows whose run ended with its request phase
        (the usual request-rewriting workflow), and the flows no workflow
        took, cost no hook call here."""
        return self._response if self.engine.runs else None

    async def _response(self, flow: http.HTTPFlow) -> None:
        pending = self.engine.start_response(flow)
        if pending is not None:
            await pending

    async def error(self, flow: http.HTTPFlow) -> None:
        await self.engine.error(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        # fires while a run's request hook is still awaited (the HTTP/1 and
        # HTTP/2 connection layers close the connection; only the flow's
        # stream waits for the hook): its calls are aborted now
        self.engine.client_gone(client.id)


OPTIONAL_HOOKS = ("requestheaders", "responseheaders", "server_connect")


def _in_turn(handlers: Sequence[Callable[[Any], None]]) -> Callable[[Any], None]:
    def hook(data: Any) -> None:
        for handler in handlers:
            handler(data)

    return hook


class StreamGuard:
    """The hooks that refuse workflows on bodies mitmproxy streams (a child
    addon of `Datakit`, present only with `stream_large_bodies` set)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.engine.requestheaders(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.engine.responseheaders(flow)


__all__ = ["Datakit"]
