"""Cost of the body size guard: bounded incremental decoding (bodies.read_body)
against mitmproxy's own `message.get_content()`, in process, per body."""

from __future__ import annotations

import gzip

from .nodes import per_call, us
from .proxy import Result, Settings

SIZES = {"1 KB": 1024, "100 KB": 100 * 1024, "5 MB": 5 * 1024 * 1024}


def _body(size: int) -> bytes:
    unit = b'{"id": 12345, "name": "datakit", "tags": ["a", "b"]},'
    return (unit * (size // len(unit) + 1))[:size]


def run(settings: Settings, wd) -> Result:
    from mitmproxy.net import encoding
    from mitmproxy.test import tutils

    from mitmdatakit.bodies import DEFAULT_LIMIT as limit
    from mitmdatakit.bodies import read_body

    res = Result("guard: body size limit")
    for label, size in SIZES.items():
        plain = _body(size)
        for enc, raw in (("identity", plain), ("gzip", gzip.compress(plain, 6))):
            msg = tutils.treq()
            msg.raw_content = raw
            if enc != "identity":
                msg.headers["content-encoding"] = enc
            number = max(3, (20 if settings.quick else 200) * 1024 // max(1, size // 1024))

            def mitm():
                encoding._cache = encoding.CachedDecode(None, None, None, None)  # no cache hits
                return msg.get_content(strict=False)

            assert read_body(msg, limit, "b") == mitm() == plain
            t_mitm = per_call(mitm, number)
            t_ours = per_call(lambda: read_body(msg, limit, "b"), number)
            res.raw[f"{label} {enc}"] = {"mitmproxy": t_mitm, "bounded": t_ours}
            res.row(f"{label} {enc}: bounded read vs .get_content()", f"{us(t_ours)} vs {us(t_mitm)} ({t_ours / t_mitm:.2f}x)")
    return res
