"""decK's environment substitution: `${{ env "DECK_NAME" }}` in a decK file
is replaced by that variable's value before the file is parsed, as `deck
gateway sync` does (developer.konghq.com app/deck/reference/env-variables.md).

decK renders the whole file as a Go template with `${{` `}}` delimiters and
the functions `env` (only `DECK_`-prefixed variables; an unset one is an
error), `toBool`, `toInt` and `toFloat`. The value goes in as text, so YAML
then reads it as it would have read it written there. Only those actions
are understood here (`env "X"`, optionally piped into one of the three
conversions); any other template action is refused rather than guessed at.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal

from ..errors import ConfigError

PREFIX = "DECK_"
_ACTION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_ENV_CALL = re.compile(r'^env\s+("(?:[^"\\]|\\.)*"|`[^`]*`)\s*(?:\|\s*(toBool|toInt|toFloat)\s*)?$', re.DOTALL)
_INT = re.compile(r"^[+-]?[0-9]+$")
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def has_placeholders(text: str) -> bool:
    return "${{" in text


def render(text: str, source: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every `${{ ... }}` action replaced by its value, or a
    ConfigError naming `source`, the line and the variable."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    end = 0
    for m in _ACTION.finditer(text):
        out.append(text[end:m.start()])
        out.append(_evaluate(m.group(1).strip(), env, source, text.count("\n", 0, m.start()) + 1))
        end = m.end()
    rest = text[end:]
    if "${{" in rest:
        line = text.count("\n", 0, end + rest.index("${{")) + 1
        raise ConfigError(f"line {line}: unclosed decK template action ('${{{{' without '}}}}')", file=source)
    out.append(rest)
    return "".join(out)


def _evaluate(action: str, env: Mapping[str, str], source: str, line: int) -> str:
    m = _ENV_CALL.match(action)
    if m is None:
        raise ConfigError(f"line {line}: unsupported decK template action '${{{{ {action} }}}}' "
                          f"(only env \"{PREFIX}NAME\", optionally piped into toBool, toInt or toFloat)", file=source)
    literal, convert = m.groups()
    name = literal[1:-1] if literal.startswith("`") else json.loads(literal)
    if not name.startswith(PREFIX):
        raise ConfigError(f"line {line}: environment variables in the state file must be prefixed with "
                          f"'{PREFIX}', found: '{name}'", file=source)
    if name not in env:
        raise ConfigError(f"line {line}: environment variable '{name}' present in state file but not set", file=source)
    value = env[name]
    try:
        if convert == "toBool":
            return "true" if _GO_BOOLS[value] else "false"
        if convert == "toInt":
            if not _INT.match(value):
                raise ValueError
            return str(int(value))
        if convert == "toFloat":
            return _go_float(float(value))
    except (KeyError, ValueError):
        raise ConfigError(f"line {line}: environment variable '{name}' ({value!r}) is not a valid "
                          f"{convert.removeprefix('to').lower()} for {convert}", file=source) from None
    return value


def _go_float(x: float) -> str:
    """A float as Go's `fmt.Sprint` writes it (what decK's template puts in
    the file): the shortest digits that read back, in exponent form when the
    exponent is below -4 or 6 and up (`1e+06`, `1.5e-05`, `100000`)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sign = "-" if math.copysign(1, x) < 0 else ""
    if x == 0:
        return sign + "0"
    _, digit_tuple, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    exp = len(digits) - 1 + int(exponent)
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    whole, frac = digits[:exp + 1].ljust(exp + 1, "0"), digits[exp + 1:]
    return f"{sign}{whole}.{frac}" if frac else sign + whole
