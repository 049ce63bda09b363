"""Workflows written back as a Kong declarative (decK) file.

A workflow with `match` becomes a service and a route (hosts, paths,
methods) carrying its datakit plugin; one without `match` becomes the
global datakit plugin, with a catch-all route so that Kong routes the
flows it ran on. Limits (docs/kong.md): `match.filter` and `upstreams`
have no Kong equivalent and are refused; Kong tries routes by priority,
not in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..config import load_file, workflow_files
from ..errors import ConfigError
from ..parsing import parse_text
from ..schema import EXTENSION_KEYS

_PLUGIN_KEYS = ("instance_name", "enabled", "protocols", "tags")


def export(paths: Sequence[str], service_url: str) -> dict[str, Any]:
    services: list[dict[str, Any]] = []
    plugins: list[dict[str, Any]] = []
    vaults: dict[str, Any] = {}
    for path in paths:
        for f in workflow_files(path):
            load_file(f)  # refuse what the loader refuses
            doc = parse_text(f.read_text(), str(f), f.suffix.lower() == ".json")
            if "_format_version" in doc:
                raise ConfigError("already a Kong declarative file", file=str(f))
            if doc.get("upstreams"):
                raise ConfigError("'upstreams' has no place in a datakit plugin; declare Kong Upstream entities instead", file=str(f), field="upstreams")
            match = doc.get("match") or {}
            if match.get("filter"):
                raise ConfigError("match.filter (a mitmproxy filter) has no Kong route equivalent", file=str(f), field="match.filter")
            for v in doc.get("vaults") or []:
                if vaults.setdefault(v["prefix"], v) != v:
                    raise ConfigError(f"vault prefix {v['prefix']!r} differs between files", file=str(f), field="vaults")
            if "config" in doc:
                config = dict(doc["config"])
                plugin = {"name": "datakit", **{k: doc[k] for k in _PLUGIN_KEYS if doc.get(k) is not None}, "config": config}
            else:
                config = {k: v for k, v in doc.items() if k not in EXTENSION_KEYS}
                plugin = {"name": "datakit", "config": config}
            if not match:
                if any(p.get("_global") for p in plugins):
                    raise ConfigError("a second workflow without match: Kong runs one global datakit plugin", file=str(f))
                plugins.append({**plugin, "_global": True})
                continue
            name = f.stem
            route = {"name": name, "strip_path": False, "preserve_host": True}
            for key in ("hosts", "paths", "methods"):
                values = match.get(key)
                if values:
                    values = [values] if isinstance(values, str) else list(values)
                    route[key] = [v.upper() for v in values] if key == "methods" else values
            # `/` matches every path; it gives the route a path, so that Kong
            # tries it before the catch-all route of the global plugin
            route.setdefault("paths", ["/"])
            route["plugins"] = [plugin]
            services.append({"name": name, "url": service_url, "routes": [route]})
    out: dict[str, Any] = {"_format_version": "3.0"}
    if vaults:
        out["vaults"] = list(vaults.values())
    global_plugins = [{k: v for k, v in p.items() if k != "_global"} for p in plugins]
    if global_plugins:  # Kong runs plugins only on routed flows: route everything else
        services.append({"name": "datakit-default", "url": service_url,
                         "routes": [{"name": "datakit-catch-all", "paths": ["/"], "strip_path": False, "preserve_host": True}]})
        out["plugins"] = global_plugins
    out["services"] = services
    return out


def write(doc: dict[str, Any], output: str | None, out: TextIO) -> None:
    import yaml

    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if output:
        Path(output).write_text(text)
    else:
        out.write(text)
