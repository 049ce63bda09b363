"""The mitmproxy side: options, reloading, and the request/response hooks."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http

from .commands import DatakitCommands, describe, register_view, unregister_view
from .config import load_path, workflow_files
from .engine import Engine
from .errors import ConfigError
from .hosts import ClientHost
from .runtime import Services
from .workflow import Workflow

logger = logging.getLogger("mitmdatakit")

RELOAD_INTERVAL = 1.0
MITMPROXY_DEFAULT_CONFDIR = "~/.mitmproxy"


def default_config_path() -> str:
    """The repository's `workflows/` next to `addon/`."""
    return str(Path(__file__).resolve().parents[2] / "workflows")


class Datakit(DatakitCommands):
    """Runs Datakit workflows on the flows passing through mitmproxy."""

    def __init__(self, default_config: str | None = None, certs_dir: str | None = None) -> None:
        self.default_config = default_config or default_config_path()
        self.certs_dir = certs_dir
        self.engine = Engine(Services(option=self._option), debug=lambda: bool(ctx.options.datakit_debug))
        self._is_running = False
        self._watched: dict[str, float] = {}
        self._watcher: asyncio.Task | None = None
        self._config_path: str | None = None
        self.last_reload_error: str | None = None
        self.client_host = ClientHost()  # match.hosts sees the client's Host in reverse mode

    # -- options and loading -----------------------------------------------

    def load(self, loader) -> None:
        register_view()
        loader.add_option(
            "datakit_config", str, self.default_config,
            "Datakit workflow file, or a directory of *.yaml, *.yml and *.json workflows (loaded in name order).",
        )
        loader.add_option(
            "datakit_debug", bool, False,
            "Enable Datakit tracing for every workflow, as if each had `debug: true`.",
        )

    def configure(self, updated: set[str]) -> None:
        if not self._is_running and self.certs_dir and ctx.options.confdir == MITMPROXY_DEFAULT_CONFDIR:
            # keep the CA with the project (certs/), unless the user chose a confdir
            ctx.options.update(confdir=self.certs_dir)
        self.client_host.configure(ctx.options, updated)
        if "datakit_config" in updated:
            self._config_path = ctx.options.datakit_config
            self.reload(initial=not self._is_running)

    def running(self) -> None:
        self._is_running = True
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def done(self) -> None:
        unregister_view()
        if self._watcher is not None:
            self._watcher.cancel()
        await self.engine.aclose()
        await self._close(self.workflows)
        await self.engine.services.aclose()

    def reload(self, initial: bool = False) -> bool:
        """Load the configured workflows; keep the old ones if that fails."""
        path = self.config_path()
        try:
            workflows = load_path(path)
        except ConfigError as e:
            self.last_reload_error = str(e)
            if initial:
                logger.error("Datakit: invalid workflow configuration: %s", e)
            else:
                logger.error("Datakit: reload failed, still serving the previous workflows: %s", e)
            self._snapshot(path)
            return False
        old, self.engine.workflows = self.engine.workflows, workflows
        self.last_reload_error = None
        self._snapshot(path)
        logger.info("Datakit: loaded %d workflow(s) from %s: %s", len(workflows), path, describe(workflows))
        if old:
            self._spawn(self._close(old))
        return True

    def config_path(self) -> str:
        return self._config_path or self.default_config

    def _snapshot(self, path: str) -> None:
        """Remember the mtimes of what `path` names, to notice edits."""
        self._watched = {}
        self._watched[path] = _mtime(path)
        try:
            for f in workflow_files(path):
                self._watched[str(f)] = _mtime(f)
        except ConfigError:
            pass

    def _changed(self) -> bool:
        path = self._config_path or self.default_config
        current = {path: _mtime(path)}
        try:
            for f in workflow_files(path):
                current[str(f)] = _mtime(f)
        except ConfigError:
            pass
        return current != self._watched

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            try:
                if self._changed():
                    logger.info("Datakit: workflow files changed, reloading")
                    self.reload()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                logger.exception("Datakit: watching the workflow files failed")

    async def _close(self, workflows: Sequence[Workflow]) -> None:
        for wf in workflows:
            try:
                await wf.aclose()
            except Exception:  # noqa: BLE001
                logger.exception("Datakit: closing workflow %s failed", wf.name)

    def _spawn(self, coro) -> None:
        try:
            asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()

    def _option(self, name: str) -> Any:
        try:
            return ctx.options._options[name].current()
        except (KeyError, AttributeError):
            raise KeyError(name) from None

    @property
    def workflows(self) -> Sequence[Workflow]:
        return self.engine.workflows

    # -- flows: the engine does the work -----------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.client_host.requestheaders(flow)

    def server_connect(self, data) -> None:
        self.client_host.server_connect(data)

    async def request(self, flow: http.HTTPFlow) -> None:
        await self.engine.request(flow)

    async def response(self, flow: http.HTTPFlow) -> None:
        await self.engine.response(flow)

    async def error(self, flow: http.HTTPFlow) -> None:
        await self.engine.error(flow)


def _mtime(path: str | os.PathLike[str]) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1.0


__all__ = ["Datakit"]
