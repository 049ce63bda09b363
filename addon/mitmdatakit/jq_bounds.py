"""Which jq programs may run inside the proxy process, and on which inputs.

A jq program in a worker process costs about 50 µs of IPC per run, more
than the whole workflow costs otherwise. Most programs are plain data
shaping (`{a: .x, b: .y}`, `.headers * {...}`, `"Bearer " + .token`) whose
run time is linear in their input. Those run in process on small inputs;
everything else runs in the killable workers of `jq_pool`.

A program is *bounded* when its tokens show it terminates in time about
linear in its input:

- no loops or recursion: no `def`, `range`, `repeat`, `while`, `until`,
  `recurse(f)`, `limit`, `input(s)`, `combinations`, ...;
- no variable bindings (`as`, hence no `reduce`/`foreach`): without them no
  expression can combine two generators over the input into a product;
- at most one generator over the input (`.[]`); no `..`, `paths` or
  `tostream`, whose output grows with the square of the input's depth;
- no regular expressions (backtracking), no `*` that could repeat a string
  (`*` is accepted only as an object merge, next to an object literal), no
  `-` that could subtract arrays (quadratic; accepted next to a number),
  no `contains`/`inside` (quadratic);
- only builtins from an allow-list, so anything unknown (a newer jq's
  builtins included) goes to the workers.

The allow-list errs on the side of the workers: a bounded program that is
refused only costs the IPC.
"""

from __future__ import annotations

import re

INPUT_LIMIT = 8 * 1024
"""Largest JSON input (bytes) a bounded program runs on in process."""

SLOW_RUN_SECONDS = 0.025
"""In-process runs that take more CPU than this, SLOW_RUNS_TO_DEMOTE times in
a row, send the program to the workers for good."""

SLOW_RUNS_TO_DEMOTE = 3

# builtins that terminate in time about linear (n log n at most) in their
# input and produce one value per call
_SAFE_BUILTINS = frozenset(
    """
    length utf8bytelength not keys keys_unsorted values has in select empty error
    arrays objects iterables booleans numbers strings nulls scalars
    floor ceil round sqrt fabs abs pow log log2 log10 exp exp2 exp10 significand trunc
    min max min_by max_by unique unique_by group_by sort sort_by reverse add any all flatten
    map map_values to_entries from_entries with_entries del delpaths getpath setpath has
    tostring tonumber type infinite nan isinfinite isnan isnormal isvalid
    ascii_downcase ascii_upcase startswith endswith ltrimstr rtrimstr trim ltrim rtrim
    explode implode join ascii tojson fromjson split
    todate fromdate now mktime gmtime localtime strftime strflocaltime strptime
    todateiso8601 fromdateiso8601 dateadd datesub date
    first last nth env builtins input_filename pick abs toarray
    true false null
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# keywords of expressions that are not loops or bindings
_SAFE_KEYWORDS = frozenset({"if", "then", "elif", "else", "end", "and", "or", "try", "catch"})


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_FORMATS = frozenset({"@text", "@json", "@html", "@uri", "@csv", "@tsv", "@sh", "@base64", "@base64d", "@base32", "@base32d"})


class _Unbounded(Exception):
    pass


def is_bounded(source: str) -> bool:
    """Whether `source` is a bounded program (see the module docstring)."""
    try:
        tokens = _tokens(source)
        _check(tokens)
    except _Unbounded:
        return False
    return True


def _tokens(source: str) -> list[str]:
    """jq's tokens, with string literals as `"` and interpolated code inlined."""
    out: list[str] = []
    _scan(source, 0, out, stop_at_paren=False)
    return out


def _scan(src: str, i: int, out: list[str], stop_at_paren: bool) -> int:
    depth = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = src.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == '"':
            i = _string(src, i + 1, out)
        elif c == "(":
            depth += 1
            out.append(c)
            i += 1
        elif c == ")":
            if stop_at_paren and depth == 0:
                return i + 1
            depth -= 1
            out.append(c)
            i += 1
        elif c == "." and src.startswith("..", i) and not src.startswith("...", i):
            out.append("..")
            i += 2
        elif c == "." and i + 1 < n and (src[i + 1].isalpha() or src[i + 1] == "_"):
            m = _IDENT.match(src, i + 1)
            assert m is not None
            out.append(".field")  # a field name, not a function
            i = m.end()
        elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            m = _NUMBER.match(src, i)
            assert m is not None
            out.append("0")
            i = m.end()
        elif c == "$":
            m = _IDENT.match(src, i + 1)
            if m is None:
                raise _Unbounded
            out.append("$" + m.group())
            i = m.end()
        elif c == "@":
            m = _IDENT.match(src, i + 1)
            if m is None or "@" + m.group() not in _FORMATS:
                raise _Unbounded
            out.append("@")
            i = m.end()
        elif c.isalpha() or c == "_":
            m = _IDENT.match(src, i)
            assert m is not None
            out.append(m.group())
            i = m.end()
        elif src.startswith("?//", i):
            raise _Unbounded  # destructuring alternatives bind variables
        else:
            two = src[i : i + 2]
            if two in ("|=", "+=", "-=", "*=", "/=", "%=", "//", "==", "!=", "<=", ">=", "?."):
                out.append(two)
                i += 2
            else:
                out.append(c)
                i += 1
    if stop_at_paren:
        raise _Unbounded  # unbalanced interpolation
    return i


def _string(src: str, i: int, out: list[str]) -> int:
    out.append('"')
    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            if src.startswith("\\(", i):
                out.append("(")
                i = _scan(src, i + 2, out, stop_at_paren=True)
                out.append(")")
                continue
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise _Unbounded  # unterminated string: let jq's own compile judge it


_VALUE_END = frozenset({".field", "0", '"', ")", "]", "}", "..", "."})


def _check(tokens: list[str]) -> None:
    generators = 0
    stack: list[str] = []
    for k, tok in enumerate(tokens):
        prev = tokens[k - 1] if k else ""
        nxt = tokens[k + 1] if k + 1 < len(tokens) else ""
        if tok in ("(", "[", "{"):
            if tok == "[" and nxt == "]" and (prev in _VALUE_END or prev.isidentifier() or prev.startswith("$")):
                generators += 1  # `.[]`, `.x[]`, `f[]`: iterate
            stack.append(tok)
        elif tok in (")", "]", "}"):
            if stack:
                stack.pop()
        elif tok == "..":
            raise _Unbounded  # its paths on deep input are quadratic (del(..), paths)
        elif tok == "*":
            if prev != "}" and nxt != "{":
                raise _Unbounded  # may repeat a string: `"x" * 1e9`
        elif tok == "-":
            if prev != "0" and nxt != "0":
                raise _Unbounded  # may subtract arrays: quadratic
        elif tok.startswith("$"):
            if tok not in ("$ENV", "$__loc__"):
                raise _Unbounded  # bound variables need `as`
        elif tok.isidentifier() or "::" in tok:
            if nxt == ":" and stack and stack[-1] == "{":
                continue  # an object key
            if tok in _SAFE_KEYWORDS:
                continue
            if tok == "split" and _arity(tokens, k) != 1:
                raise _Unbounded  # split/2 is a regular expression
            if tok not in _SAFE_BUILTINS:
                raise _Unbounded
        if generators > 1:
            raise _Unbounded


def _arity(tokens: list[str], k: int) -> int:
    """How many arguments the call at `tokens[k]` has (0 without parens)."""
    if k + 1 >= len(tokens) or tokens[k + 1] != "(":
        return 0
    depth = 0
    args = 1
    for tok in tokens[k + 1 :]:
        if tok in ("(", "[", "{"):
            depth += 1
        elif tok in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return args
        elif tok == ";" and depth == 1:
            args += 1
    return args
