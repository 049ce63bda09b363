"""What both cache backends share: their errors and the JSON text an entry
is stored as (a stored value is a copy, and the same values are cacheable
with both strategies)."""

from __future__ import annotations

import json
from typing import Any

from ...errors import CacheBackendError, CacheValueError

__all__ = ["CacheBackendError", "CacheValueError", "decode_entry", "encode_entry"]


def encode_entry(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise CacheValueError(f"value cannot be cached: {e}") from None


def decode_entry(text: str | bytes, key: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise CacheBackendError(f"cache entry for key {key!r} is not valid JSON") from None

