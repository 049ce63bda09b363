"""Cost of the header-map guards, in process: dropping framing/hop-by-hop
entries (`header_policy.writable_headers`) and checking names (RFC 9110
tokens) and values (no control characters), per message written, for a
typical 10-header map and a 100-header one.

"write" is what a `service_request`/`response` header write costs in all:
policy, checks and setting the fields on mitmproxy `Headers`.
"""

from __future__ import annotations

import re

from mitmproxy.http import Headers

from mitmdatakit.codecs import encode_headers, write_message
from mitmdatakit.header_policy import writable_headers

from .nodes import per_call, us
from .proxy import Result, Settings

# a call's response headers merged into a request's (the common jq pattern)
MERGED_EXTRA = {"content-length": "2", "connection": "close", "transfer-encoding": "chunked"}


def header_map(count: int) -> dict[str, str | list[str]]:
    base = {"accept": "application/json", "content-type": "application/json", "user-agent": "bench/1.0",
            "authorization": "Bearer abc.def.ghi", "x-request-id": "5f1c0f8e-1d3a-4c55-9a0e-2b3f4c5d6e7f",
            "cache-control": "no-cache", "accept-encoding": "gzip, deflate", "x-forwarded-for": "10.0.0.1",
            "set-cookie": ["a=1; Path=/", "b=2; Path=/"], "x-api-version": "2024-06-01"}
    out = dict(base)
    for i in range(count - len(base)):
        out[f"x-extra-{i}"] = f"value number {i} of the map"
    return out


_FORMER_CHECK = re.compile("[\r\n\0]")


def former_checks(value: dict) -> None:
    """The reference: what was checked before (CR, LF or NUL only), same loop."""
    for name, item in value.items():
        if _FORMER_CHECK.search(name):
            raise ValueError(name)
        for text in item if isinstance(item, list) else [item]:
            if _FORMER_CHECK.search(text):
                raise ValueError(name)


class _Message:
    """Just enough of a mitmproxy message for `write_message(set_body=False)`."""

    def __init__(self) -> None:
        self.headers = Headers(host="example.com", content_length="13")


def run(settings: Settings, wd) -> Result:
    res = Result("guard_headers")
    number = 2000 if settings.quick else 5000
    for count in (10, 100):
        clean = header_map(count)
        merged = {**clean, **MERGED_EXTRA}
        policy_clean = per_call(lambda: writable_headers(clean, "bench"), number)
        policy_merged = per_call(lambda: writable_headers(merged, "bench"), number)
        checks = per_call(lambda: encode_headers(clean), number)
        former = per_call(lambda: former_checks(clean), number)
        write = per_call(lambda: write_message(_Message(), merged, None, set_body=False, where="bench"), number)
        bare = per_call(lambda: _Message(), number)  # the fresh Headers each write starts from
        res.row(f"{count} headers: drop framing/hop-by-hop (clean map)", us(policy_clean))
        res.row(f"{count} headers: drop framing/hop-by-hop (+3 merged)", us(policy_merged))
        res.row(f"{count} headers: encode with name and value checks", us(checks))
        res.row(f"{count} headers: reference, the former CR/LF/NUL scan alone", us(former))
        guard = policy_merged + checks
        # an absolute goal means little on a shared machine: the guards are
        # judged against mitmproxy's own work of setting the same fields
        res.row(f"{count} headers: guards in all (drop + encode/check)", f"{us(guard)} ({guard / (write - bare):.0%} of the write)",
                "< the whole write", guard < write - bare)
        res.row(f"{count} headers: whole write onto mitmproxy Headers (+3 merged)", us(write - bare))
        res.raw[str(count)] = {"policy_clean_s": policy_clean, "policy_merged_s": policy_merged,
                               "checks_s": checks, "former_checks_s": former, "write_s": write - bare}
    return res
