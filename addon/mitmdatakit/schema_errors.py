"""Schema violations in words a user can act on, close to Kong's own.

jsonschema's messages repeat the offending value (a 10 kB jq filter, a
65-node list); Kong says "length must be at most 255" or "expected one of:
...". These say what the limit is and, where it helps, what was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object (mapping)",
    "array": "an array (list)",
    "null": "null",
}


def _count(value: Any) -> str:
    unit = "characters" if isinstance(value, str) else "entries"
    try:
        return f"{len(value)} {unit}"
    except TypeError:
        return "?"


def _range(schema: Mapping[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"value should be between {low} and {high}"
    if low is not None:
        return f"value must be at least the minimum of {low}"
    return f"value must be at most the maximum of {high}"


def describe(error: ValidationError) -> str:
    """One sentence for a schema violation (which field is said elsewhere)."""
    rule, value = error.validator, error.instance
    limit: Any = error.validator_value  # the rule's own value: a number, list, pattern...
    if rule in ("anyOf", "oneOf") and error.context:
        # optional attributes are "the real schema, or null": explain the real one,
        # and a broken limit before a pattern (an empty label breaks both)
        real = [e for e in error.context if not (e.validator == "type" and e.validator_value == "null")]
        real = [e for e in real if e.validator != "pattern"] or real
        if real:
            return describe(best_match(real))
    match rule:
        case "maxLength" | "maxItems" | "maxProperties":
            return f"length must be at most {limit} (got {_count(value)})"
        case "minLength" | "minItems" | "minProperties":
            return f"length must be at least {limit} (got {_count(value)})"
        case "minimum" | "maximum":
            return f"{_range(error.schema if isinstance(error.schema, Mapping) else {})} (got {value!r})"
        case "enum":
            return f"expected one of: {', '.join(map(str, (v for v in limit if v is not None)))} (got {value!r})"
        case "const":
            return f"expected {limit!r} (got {value!r})"
        case "type":
            kinds = [limit] if isinstance(limit, str) else list(limit)
            words = " or ".join(_TYPE_WORDS.get(k, k) for k in kinds if k != "null")
            return f"expected {words or 'null'}"
        case "pattern":
            return f"{value!r} does not match {limit!r}"
    return error.message
