"""Keeping vault values out of log lines.

The runtime redacts what it knows to derive from a secret (taint.py) in
messages and traces; this module covers the log: URLs are shown without
credentials or query values, and a filter on the `mitmdatakit` logger
replaces every loaded vault value in each record (message, arguments and
traceback) as a last line of defence.
"""

from __future__ import annotations

import logging
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


LOG_FILTER = SecretLogFilter()
logging.getLogger("mitmdatakit").addFilter(LOG_FILTER)

__all__ = ["LOG_FILTER", "SecretLogFilter", "safe_url"]
