"""Reloading, the parts that do not touch the event loop: what the
configured path looks like now, when a change is safe to load, and loading
that never raises.

The addon polls `snapshot()` every `POLL_INTERVAL` seconds and asks a
`ChangeDetector` whether to load: only after a change was seen *and* the
next poll saw the files unchanged (a half-written file is never loaded),
and never again for files that already failed (a bad file is not retried
until it changes). `load_outcome()` runs in a worker thread and turns any
failure, MemoryError and RecursionError included, into an error to log.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

from .config import SUFFIXES, Skipped, load_file_workflows, workflow_entries
from .errors import ConfigError
from .workflow import Workflow

POLL_INTERVAL = 1.0  # seconds between looks at the workflow files

Snapshot = Hashable


def _stat_key(path: str) -> tuple[object, ...]:
    try:
        st = os.stat(path)
    except OSError as e:
        return ("unreadable", e.errno)
    # ctime too: a chmod that makes a file readable is a change
    return (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """A comparable picture of the files `path` names: each one's type,
    inode, size and times (a directory: its entries with workflow suffixes)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return ("file", str(p), _stat_key(str(p)))
    try:
        with os.scandir(p) as it:
            names = sorted(e.name for e in it if os.path.splitext(e.name)[1].lower() in SUFFIXES)
    except OSError as e:
        return ("dir", str(p), ("unreadable", e.errno))
    return ("dir", str(p), tuple((name, _stat_key(os.path.join(p, name))) for name in names))


class ChangeDetector:
    """Decides when changed files are stable enough to load."""

    def __init__(self) -> None:
        self.loaded: Snapshot | None = None  # what the last load (good or bad) saw
        self.pending: Snapshot | None = None  # a change seen at the previous poll

    def should_load(self, current: Snapshot) -> bool:
        """True when `current` differs from what was loaded and the previous
        poll saw exactly `current` too."""
        if current == self.loaded:
            self.pending = None
            return False
        if current == self.pending:
            return True
        self.pending = current
        return False

    def loaded_from(self, seen: Snapshot) -> None:
        self.loaded, self.pending = seen, None


@dataclass
class Outcome:
    """The result of one load: workflows, or what went wrong."""

    workflows: list[Workflow] | None = None
    error: str | None = None
    traceback: str | None = None  # for failures that are not ConfigErrors (bugs, MemoryError)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0


def load_outcome(path: str | os.PathLike[str]) -> Outcome:
    """Load the workflows `path` names; never raises (an Exception is an
    Outcome with an error)."""
    started = time.perf_counter()
    outcome = Outcome()
    current = os.fspath(path)
    try:
        files, outcome.skipped = workflow_entries(path)
        workflows = []
        for f in files:
            current = str(f)
            workflows.extend(load_file_workflows(f))
        outcome.workflows = workflows
    except ConfigError as e:
        outcome.error = str(e)
    except Exception as e:  # noqa: BLE001 - MemoryError, RecursionError, bugs: the proxy keeps serving
        outcome.error = f"{current}: {type(e).__name__} while loading: {e}"
        outcome.traceback = traceback.format_exc()
    outcome.seconds = time.perf_counter() - started
    return outcome


__all__ = ["POLL_INTERVAL", "ChangeDetector", "Outcome", "Snapshot", "load_outcome", "snapshot"]
