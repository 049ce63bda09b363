"""Workflow resources (the `resources:` block), one module each.

A resource module defines a `Resource` subclass named by the key it handles
under `resources` (`cache`, `vault`) and decorates it with `@register`. The
loader builds one instance per workflow; nodes reach it through
`self.workflow.resources[NAME]`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import ConfigError


class Resource:
    key: ClassVar[str]
    """The key under `resources:` this type handles."""

    schema: ClassVar[Mapping[str, Any]] = {"type": "object"}
    """JSON Schema of the block."""

    def __init__(self, config: Any, source: str) -> None:
        self.config = config
        self.source = source

    @classmethod
    def build(cls, config: Any, source: str, info: Any) -> Resource:
        """What the loader calls: the resource for a workflow (`info`: its
        `WorkflowInfo`, e.g. `info.extra["vaults"]`, the Vault entities)."""
        return cls(config, source)

    def config_error(self, message: str, field: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.source, field=f"resources.{self.key}" + (f".{field}" if field else ""))

    async def aclose(self) -> None:
        """Release connections when the workflow is unloaded."""


_REGISTRY: dict[str, type[Resource]] = {}
_loaded = False


def register(cls: type[Resource]) -> type[Resource]:
    _REGISTRY[cls.key] = cls
    return cls


def resource_types() -> Mapping[str, type[Resource]]:
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return _REGISTRY
