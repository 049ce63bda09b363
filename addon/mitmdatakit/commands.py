"""mitmproxy commands of the addon, for the console (`:datakit.reload`) and
mitmweb's command bar; and the `Datakit` contentview's registration."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mitmproxy import command, contentviews, exceptions, flow

from .contentview import VIEW_NAME, render
from .contentview import view as datakit_view
from .render import render_mermaid
from .summary import from_flow

if TYPE_CHECKING:
    from .workflow import Workflow

logger = logging.getLogger("mitmdatakit")


def register_view() -> None:
    contentviews.add(datakit_view)


def unregister_view() -> None:
    # mitmproxy 12 has no public removal (contentviews.remove is a deprecated
    # no-op); drop ours so an unloaded script leaves no dead view behind
    views = getattr(contentviews.registry, "_by_name", None)
    if isinstance(views, dict) and views.get(VIEW_NAME.lower()) is datakit_view:
        del views[VIEW_NAME.lower()]


def describe(workflows: Sequence[Workflow]) -> str:
    return ", ".join(f"{w.name} ({len([n for n in w.plan.nodes if n.declared])} nodes)" for w in workflows) or "none"


class DatakitCommands:
    """Mixed into the addon class: mitmproxy collects the decorated methods."""

    # provided by the addon
    last_reload_error: str | None

    @property
    def workflows(self) -> Sequence[Workflow]:
        raise NotImplementedError

    def reload(self, initial: bool = False) -> bool:
        raise NotImplementedError

    def config_path(self) -> str:
        raise NotImplementedError

    @command.command("datakit.reload")
    def reload_command(self) -> str:
        """Reload the Datakit workflows now; on an invalid configuration the
        previous workflows keep serving and the command fails with the error."""
        if not self.reload():
            raise exceptions.CommandError(
                f"Datakit: reload failed, still serving the previous workflows: {self.last_reload_error}"
            )
        return f"Datakit: loaded {len(self.workflows)} workflow(s) from {self.config_path()}: {describe(self.workflows)}"

    @command.command("datakit.graph")
    def graph_command(self, flow: flow.Flow) -> str:
        """The Mermaid graph of the Datakit workflow that ran on the flow."""
        return render_mermaid(self._workflow_of(flow))

    @command.command("datakit.summary")
    def summary_command(self, flow: flow.Flow) -> str:
        """The Datakit run of the flow as text (what the `Datakit` contentview shows)."""
        record = from_flow(flow)
        if record is None:
            raise exceptions.CommandError("No Datakit workflow ran on this flow.")
        return render(record)

    def _workflow_of(self, f: flow.Flow) -> Workflow:
        record = from_flow(f)
        if record is None:
            raise exceptions.CommandError("No Datakit workflow ran on this flow.")
        name = record.get("workflow")
        for wf in self.workflows:
            if wf.name == name:
                return wf
        raise exceptions.CommandError(f"Workflow {name!r} ran on this flow but is no longer loaded.")
