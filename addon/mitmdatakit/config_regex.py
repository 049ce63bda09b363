"""Regular expressions from configuration, tested on request data under a
time limit.

Python's `re` backtracks without bound: a pattern such as `(a+)+$` in a
workflow's `match.paths` or a decK route, tested on a path a client chose
(`/aaaa...a!`), would hold the proxy's event loop for minutes. Kong's
router runs PCRE, which gives up past its match limit and the route does
not match. Here the `regex` module's timeout plays that part: a test that
takes longer than MATCH_TIMEOUT counts as no match, and the log says which
pattern gave up. (A real pattern tests a path in microseconds.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import regex

logger = logging.getLogger("mitmdatakit")

MATCH_TIMEOUT = 0.1  # seconds
"""How long one test of one pattern may take before it counts as no match."""

error = regex.error  # a pattern that does not compile


class ConfigRegex:
    """A compiled pattern whose tests give up after MATCH_TIMEOUT."""

    __slots__ = ("_prefix", "_rx", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self.pattern = pattern
        # VERSION0: the syntax and behaviour of `re` (plus PCRE's `(?<name>...)`)
        self._rx = regex.compile(pattern, regex.VERSION0 | (regex.IGNORECASE if ignore_case else 0))
        self._prefix = "" if ignore_case else literal_prefix(pattern)

    def match(self, text: str) -> regex.Match[str] | None:
        """A match at the start of `text`, as `re.Pattern.match`. A text
        without the pattern's literal start is refused before the timed
        test: the time limit costs about 0.8 µs a call, and most route
        patterns (`~/orders/(?<id>\\d+)$`) fail on their first characters."""
        if not text.startswith(self._prefix):
            return None
        return self._within_time(self._rx.match, text)

    def search(self, text: str) -> regex.Match[str] | None:
        return self._within_time(self._rx.search, text)

    def _within_time(self, test: Callable[..., regex.Match[str] | None], text: str) -> regex.Match[str] | None:
        try:
            return test(text, timeout=MATCH_TIMEOUT)
        except TimeoutError:
            self._gave_up(text)
            return None

    def _gave_up(self, text: str) -> None:
        logger.error("Datakit: the pattern %r gave up after %.0f ms on a %d-character value (catastrophic "
                     "backtracking?); counted as no match, as Kong's PCRE match limit does",
                     self.pattern, MATCH_TIMEOUT * 1000, len(text))


_SPECIAL = frozenset(".^$*+?{}[]\\|()")
_QUANTIFIERS = frozenset("*+?{")
_INLINE_FLAGS = regex.compile(r"\(\?[aiLmsux-]")


def literal_prefix(pattern: str) -> str:
    """The characters every match of `pattern` (anchored at the start)
    begins with: its leading plain characters, less one that a quantifier
    makes optional. Empty when an alternation outside any group or inline
    flags (`(?i)`, `(?x)`) could make that start optional or case-free."""
    if _INLINE_FLAGS.search(pattern) or _top_level_alternation(pattern):
        return ""
    end = 0
    while end < len(pattern) and pattern[end] not in _SPECIAL:
        end += 1
    if end < len(pattern) and pattern[end] in _QUANTIFIERS:
        end -= 1
    return pattern[:max(end, 0)]


def _top_level_alternation(pattern: str) -> bool:
    depth, i, n = 0, 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # a class: `]` right after `[` or `[^` is a member
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth <= 0:
            return True
        i += 1
    return False
