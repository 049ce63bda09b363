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

    __slots__ = ("_rx", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self.pattern = pattern
        # VERSION0: the syntax and behaviour of `re` (plus PCRE's `(?<name>...)`)
        self._rx = regex.compile(pattern, regex.VERSION0 | (regex.IGNORECASE if ignore_case else 0))

    def match(self, text: str) -> regex.Match[str] | None:
        """A match at the start of `text`, as `re.Pattern.match`."""
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
