"""The memory cache's byte bound counts the memory entries really hold
(measured with tracemalloc), whatever the characters, and evicts LRU."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from mitmdatakit.errors import CacheBackendError
from mitmdatakit.resources.cache import MemoryBackend, MemoryStore

BOUND = 4 * 1024 * 1024


@pytest.mark.parametrize("char", ["x", "\u00e9", "\u2603", "\U0001f600"], ids=["ascii", "latin1", "bmp", "astral"])
async def test_stored_bytes_stay_under_the_bound(char):
    store = MemoryStore(max_entries=10_000, max_bytes=BOUND)
    backend = MemoryBackend(store)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(60):  # 60 values of 100k characters: 6M to 24 MB if unbounded
            await backend.set(f"key-{i}", char * 100_000, None)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert store.size_bytes <= BOUND
    # what the process really holds for the store (small slack: the test's own objects)
    assert held <= BOUND + 64 * 1024, (held, len(store))
    assert len(store) >= 1 and (await backend.get("key-59"))[0]  # the newest is kept


async def test_eviction_is_least_recently_used():
    value = "\U0001f600" * 100_000  # 400 kB in memory
    store = MemoryStore(max_bytes=BOUND)
    backend = MemoryBackend(store)
    for i in range(10):  # 10 x ~400 kB fit in 4 MiB, 11 do not
        await backend.set(f"k{i}", value + str(i), None)
    assert len(store) == 10
    assert (await backend.get("k0"))[0]  # k0 is now the most recently used
    await backend.set("k10", value, None)
    assert len(store) == 10
    assert (await backend.get("k0"))[0] and (await backend.get("k10"))[0]
    assert not (await backend.get("k1"))[0]  # the least recently used went
    assert store.size_bytes <= BOUND


async def test_a_value_larger_than_the_bound_is_refused_by_its_memory_size():
    store = MemoryStore(max_bytes=BOUND)
    # 1.5M characters: under the bound counted as characters, 6 MB in memory
    with pytest.raises(CacheBackendError, match="exceeds"):
        await MemoryBackend(store).set("big", "\U0001f600" * 1_500_000, None)
    assert len(store) == 0 and store.size_bytes == 0
