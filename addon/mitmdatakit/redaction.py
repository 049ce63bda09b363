"""Keeping vault values and terminal control sequences out of log lines.

The runtime redacts what it knows to derive from a secret (taint.py) in
messages and traces; this module covers the log: URLs are shown without
credentials or query values, and a filter on the `mitmdatakit` logger
replaces every loaded vault value in each record (message, arguments and
traceback) as a last line of defence. Another escapes control characters
(`printable`): log lines quote clients (a jq error built from the request)
and workflow files, and mitmdump writes them to the operator's terminal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from .codecs import decode_query
from .trace import REDACTED, Redactor


def safe_url(url: str, redactor: Redactor | None = None) -> str:
    """The URL for a log line: no user info, query values replaced (keys
    kept, they tell which parameter it was), the rest redacted."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "&".join(f"{k}={REDACTED}" for k in decode_query(parts.query)) if parts.query else ""
    shown = urlunsplit((parts.scheme, host, parts.path, query, ""))
    return redactor.text(shown) if redactor else shown


class SecretLogFilter(logging.Filter):
    """Redacts the loaded workflows' vault values in every record."""

    def __init__(self) -> None:
        super().__init__()
        self.redactor = Redactor()

    def use(self, secrets: Iterable[str]) -> None:
        self.redactor = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        if not redactor:
            return True
        message = record.getMessage()
        record.msg, record.args = redactor.text(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redactor.text(text), None
        return True


# C0 controls but tab and newline, DEL, C1 (0x9b is a CSI too) and the
# bidirectional overrides and isolates, which reorder what a terminal shows
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with terminal control characters escaped as `\\x1b`, `\\u202e`
    (tab and newline kept)."""
    return _UNPRINTABLE.sub(_escape, text)


class PrintableLogFilter(logging.Filter):
    """Escapes control characters in every record, so that no log line can
    move the cursor, retitle or clear the terminal mitmdump writes to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _UNPRINTABLE.search(message):
            record.msg, record.args = printable(message), None
        if record.exc_info:  # an exception's message may quote a client too
            record.exc_text, record.exc_info = logging.Formatter().formatException(record.exc_info), None
        if record.exc_text:
            record.exc_text = printable(record.exc_text)
        return True


LOG_FILTER = SecretLogFilter()
logging.getLogger("mitmdatakit").addFilter(LOG_FILTER)
logging.getLogger("mitmdatakit").addFilter(PrintableLogFilter())

__all__ = ["LOG_FILTER", "PrintableLogFilter", "SecretLogFilter", "printable", "safe_url"]
