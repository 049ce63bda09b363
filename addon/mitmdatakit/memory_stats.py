"""`kong.node.memory_stats`: this process's memory in the shape of Kong's
`kong.node.get_memory_stats()` (PDK reference, kong.node.md): the shared
dictionaries (here the `cache` node's memory dictionaries) and one entry
per Lua VM (here the one Python process). Bytes, as Kong's default unit."""

from __future__ import annotations

import os
import resource
import sys
import tracemalloc
from typing import Any

from .resources.cache.memory import shared_memory_stores


def process_bytes() -> int:
    """Memory this process holds: what tracemalloc traces when it runs (the
    Python heap, nearest to Lua's GC count), else the resident set."""
    if tracemalloc.is_tracing():
        return tracemalloc.get_traced_memory()[0]
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the peak: all that is portable
        return peak if sys.platform == "darwin" else peak * 1024


def memory_stats() -> dict[str, Any]:
    return {
        "lua_shared_dicts": {
            name: {"allocated_slabs": store.size_bytes, "capacity": store.max_bytes}
            for name, store in sorted(shared_memory_stores().items())
        },
        "workers_lua_vms": [{"http_allocated_gc": process_bytes(), "pid": os.getpid()}],
    }
