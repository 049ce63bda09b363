"""The `memory` cache strategy: bounded LRU stores in this proxy process,
shared by dictionary name (Kong's shared dictionaries)."""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .entries import CacheBackendError, decode_entry, encode_entry

__all__ = ["DEFAULT_DICTIONARY", "MEMORY_MAX_BYTES", "MEMORY_MAX_ENTRIES", "MemoryBackend", "MemoryStore", "shared_memory_store", "shared_memory_stores"]

MEMORY_MAX_ENTRIES = 10_000
MEMORY_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_DICTIONARY = "kong_db_cache"
_SWEEP_EVERY = 1024  # sets between sweeps of expired memory entries
# memory of one entry besides its two strings: the (expiry, text) tuple, the
# float and the ordered dict's slot (measured with tracemalloc: about 146)
_ENTRY_OVERHEAD = 160


class MemoryStore:
    """A bounded LRU map of JSON text with per-entry expiry (monotonic clock)."""

    def __init__(
        self,
        max_entries: int = MEMORY_MAX_ENTRIES,
        max_bytes: int = MEMORY_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._data: OrderedDict[str, tuple[float | None, str]] = OrderedDict()
        self._bytes = 0
        self._sets = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @staticmethod
    def _cost(key: str, text: str) -> int:
        """Bytes the entry holds: len() would count characters, and a str of
        emoji takes 4 bytes per character."""
        return sys.getsizeof(key) + sys.getsizeof(text) + _ENTRY_OVERHEAD

    def _drop(self, key: str) -> None:
        _, text = self._data.pop(key)
        self._bytes -= self._cost(key, text)

    def get(self, key: str) -> tuple[bool, str | None]:
        entry = self._data.get(key)
        if entry is None:
            return False, None
        expires, text = entry
        if expires is not None and self.clock() >= expires:
            self._drop(key)
            return False, None
        self._data.move_to_end(key)
        return True, text

    def set(self, key: str, text: str, ttl: float | None) -> None:
        cost = self._cost(key, text)
        if cost > self.max_bytes:
            raise CacheBackendError(f"value of {cost} bytes exceeds the memory cache's bound of {self.max_bytes} bytes")
        if key in self._data:
            self._drop(key)
        expires = None if ttl is None else self.clock() + ttl
        self._data[key] = (expires, text)
        self._bytes += cost
        self._sets += 1
        if self._sets % _SWEEP_EVERY == 0:
            self.sweep()
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)

    def sweep(self) -> None:
        """Drop every expired entry."""
        now = self.clock()
        for key in [k for k, (exp, _) in self._data.items() if exp is not None and now >= exp]:
            self._drop(key)

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0


_SHARED_STORES: dict[str, MemoryStore] = {}


def shared_memory_store(name: str) -> MemoryStore:
    """The process-wide store for a dictionary name (Kong's shared dict)."""
    store = _SHARED_STORES.get(name)
    if store is None:
        store = _SHARED_STORES[name] = MemoryStore()
    return store


class MemoryBackend:
    strategy = "memory"

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store if store is not None else MemoryStore()

    async def get(self, key: str) -> tuple[bool, Any]:
        found, text = self.store.get(key)
        if not found or text is None:
            return False, None
        return True, decode_entry(text, key)

    async def set(self, key: str, value: Any, ttl: float | None) -> None:
        self.store.set(key, encode_entry(value), ttl)

    async def aclose(self) -> None:
        """The store outlives the workflow (shared by dictionary name)."""


def shared_memory_stores() -> Mapping[str, MemoryStore]:
    """Every shared store this process made so far, by dictionary name."""
    return dict(_SHARED_STORES)
