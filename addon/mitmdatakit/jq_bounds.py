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

- no write to an array index the program does not spell out: with an
  assignment (`=`, `|=`, `+=`, ...) every index is empty (`.[]`), a string
  or a literal below 1024 (jq pads an array up to the index it writes:
  `.[.n] = 1` with n = 5e8 would build 8 GB), and no `setpath`, `pick`,
  `nth` or `getpath` path.

Linear in the input is not enough: the program's own length multiplies.
Each pipeline stage can copy its input several times (`[., .]`, `. + .`,
`{a: ., b: .}`) or grow it (`tojson` escapes, formats, `to_entries`), and
stages chain: `[.,.] | [.,.] | ...` forty times builds 2^40 values from
one byte. So a bounded program also gets a *growth* factor, a bound on its
output size over its input size (`growth`), and runs in process only on
inputs small enough that input x growth stays within OUTPUT_BUDGET.

The allow-list errs on the side of the workers: a bounded program that is
refused only costs the IPC.
"""

from __future__ import annotations

import os
import re

INPUT_LIMIT = 8 * 1024
"""Largest JSON input (bytes) a bounded program runs on in process."""

OUTPUT_BUDGET = 256 * 1024
"""Worst-case size (bytes) of what a program may build in process: its
input limit is this over its growth factor (at most INPUT_LIMIT)."""

SMALL_INDEX = 1024
"""An assignment may write literal array indexes below this in process."""

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
    map map_values to_entries from_entries with_entries del delpaths getpath has
    tostring tonumber type infinite nan isinfinite isnan isnormal isvalid
    ascii_downcase ascii_upcase startswith endswith ltrimstr rtrimstr trim ltrim rtrim
    explode implode join ascii tojson fromjson split
    todate fromdate now mktime gmtime localtime strftime strflocaltime strptime
    todateiso8601 fromdateiso8601 dateadd datesub date
    first last nth env builtins input_filename abs toarray
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
    return in_process_limit(source) > 0


def in_process_limit(source: str) -> int:
    """The largest JSON input (bytes) `source` runs on in process; 0: the
    program always runs in the workers."""
    try:
        tokens = _tokens(source)
        _check(tokens)
        factor = growth(tokens)
        if "join" in tokens:
            factor *= _join_factor(tokens, source)
    except (_Unbounded, RecursionError):  # nested deeper than we look: the workers
        return 0
    # literals count as input: `"<5,000 chars>" | [.,.] | ...` grows them too
    return max(0, min(INPUT_LIMIT, OUTPUT_BUDGET // factor - len(source) - _extra_input(tokens)))


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
            small = m.group().isdigit() and int(m.group()) < SMALL_INDEX
            out.append("0" if small else "N")  # "N": large or not an integer
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
                out.append(_INTERPOLATION)
                i = _scan(src, i + 2, out, stop_at_paren=True)
                out.append(")")
                continue
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise _Unbounded  # unterminated string: let jq's own compile judge it


_INTERPOLATION = "\\("  # `\(` inside a string: code whose value is turned into text
_NUMBERS = frozenset({"0", "N"})  # "0": an integer literal below SMALL_INDEX; "N": any other number
_VALUE_END = frozenset({".field", "0", "N", '"', ")", "]", "}", "..", "."})
_ASSIGNMENTS = frozenset({"=", "|=", "+=", "-=", "*=", "/=", "%="})  # `//=` scans as `//`, `=`
# builtins that name an arbitrary path: as an assignment's target, they write any index
_PATH_BUILTINS = frozenset({"nth", "getpath", "paths", "limit"})


def _indexes(tokens: list[str], k: int) -> bool:
    """Whether the `[` at `tokens[k]` indexes the value before it (`.a[..]`)
    rather than building an array."""
    prev = tokens[k - 1] if k else ""
    return prev in _VALUE_END or prev.isidentifier() or prev.startswith("$")


def _check(tokens: list[str]) -> None:
    generators = 0
    stack: list[str] = []
    writes = any(tok in _ASSIGNMENTS for tok in tokens)
    for k, tok in enumerate(tokens):
        prev = tokens[k - 1] if k else ""
        nxt = tokens[k + 1] if k + 1 < len(tokens) else ""
        if tok in ("(", "[", "{", _INTERPOLATION):
            if tok == "[" and _indexes(tokens, k):
                if nxt == "]":
                    generators += 1  # `.[]`, `.x[]`, `f[]`: iterate
                elif writes and not (nxt in ('"', "0") and k + 2 < len(tokens) and tokens[k + 2] == "]"):
                    raise _Unbounded  # an assignment may write a computed or large index: jq pads up to it
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
            if prev not in _NUMBERS and nxt not in _NUMBERS:
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
            if writes and tok in _PATH_BUILTINS:
                raise _Unbounded  # `nth(5e8) = 1` writes index 5e8
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
        if tok in ("(", "[", "{", _INTERPOLATION):
            depth += 1
        elif tok in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return args
        elif tok == ";" and depth == 1:
            args += 1
    return args


# -- growth ------------------------------------------------------------------

# Builtins whose output can be larger than their input, and by how much at
# most (bytes of JSON out per byte in, worst case). Any other builtin gives
# at most its input (a selection, a reordering, a number or a boolean).
_GROWS = {
    "tojson": 6, "tostring": 6, "@": 6,  # escapes: a control character becomes \u0000, `'` &#39; in @html
    "explode": 8, "to_entries": 5, "with_entries": 5, "split": 3, "/": 3, "group_by": 2, "toarray": 3,
    "fromjson": 4, "tonumber": 4,  # `1e999` is printed as 1.7976931348623157e+308
    "todate": 24, "todateiso8601": 24, "dateadd": 24, "datesub": 24, "date": 24, "gmtime": 24,
    "localtime": 24, "strftime": 24, "strflocaltime": 24, "strptime": 24,
}
# values a program reads besides its input (their size is added to the input's)
_SOURCES = frozenset({".", ".field", "$ENV", "env", "builtins"})
_CLOSERS = {"(": ")", "[": "]", "{": "}", _INTERPOLATION: ")"}
_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


def growth(tokens: list[str]) -> int:
    """A bound on the program's output size over its input size.

    Each `|` stage (at every depth) multiplies: `[.,.] | [.,.]` is 4. Within
    a stage the terms add up: each read of the input (`.`, `.a`) is 1, a
    bracketed sub-expression its own growth (times 6 when interpolated
    into a string), a growing builtin its factor, any other builtin 1. An
    index (`.a[...]`) selects: its expression adds nothing. Too large to
    matter (beyond OUTPUT_BUDGET): _Unbounded."""
    return _pipeline(tokens, 0, None)[0]


def _pipeline(tokens: list[str], i: int, closer: str | None) -> tuple[int, int]:
    total, terms = 1, 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        if tok == closer:
            return total * max(1, terms), i + 1
        if tok in _CLOSERS:
            inner, after = _pipeline(tokens, i + 1, _CLOSERS[tok])
            if tok == "[" and _indexes(tokens, i):
                inner = 0  # `.a[expr]`: a selection
            elif tok == _INTERPOLATION:
                inner *= _GROWS["tostring"]
            terms += inner
            i = after
            continue
        if tok in (")", "]", "}"):
            raise _Unbounded  # unbalanced: jq's own compile refused it already
        if tok in ("|", "|="):
            total *= max(1, terms)
            terms = 0
        elif tok in _SOURCES:
            terms += 1
        elif tok in _GROWS:
            terms += _GROWS[tok]
        elif tok.isidentifier() and tok not in _SAFE_KEYWORDS and tokens[i + 1 : i + 2] != [":"]:
            terms += 1  # a builtin applied to the stage's input
        if total * max(1, terms) > OUTPUT_BUDGET:
            raise _Unbounded
        i += 1
    if closer is not None:
        raise _Unbounded
    return total * max(1, terms), i


def _join_factor(tokens: list[str], source: str) -> int:
    """`join(sep)` adds the separator once per element (an element is at
    least 2 bytes of JSON): a literal separator multiplies by its length; a
    separator read from the input (quadratic) is _Unbounded."""
    longest = max((len(m.group()) for m in _LITERAL.finditer(source)), default=0)
    for k, tok in enumerate(tokens):
        if tok != "join" or k + 1 >= len(tokens) or tokens[k + 1] != "(":
            continue
        depth = 0
        for arg in tokens[k + 1 :]:
            if arg in _CLOSERS:
                depth += 1
            elif arg in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    break
            elif arg in _SOURCES:
                raise _Unbounded
    return 1 + longest


def _extra_input(tokens: list[str]) -> int:
    """Bytes a program reads besides its input: the environment, builtins."""
    extra = 0
    if "$ENV" in tokens or "env" in tokens:
        extra += sum(len(k) + len(v) + 6 for k, v in os.environ.items())
    if "builtins" in tokens:
        extra += 16 * 1024
    return extra
