"""tunecord's ML core: base models, LoRA training and chat generation behind ``trainer.engine``.

Importing this package is cheap; torch and transformers load with the first submodule used::

    from trainer.ml import LocalEngine
    engine = LocalEngine(data_dir)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainer.ml.registry import DEFAULT_BASE_MODEL, ModelRegistry

if TYPE_CHECKING:
    from trainer.ml.engine import LocalEngine

__all__ = ["DEFAULT_BASE_MODEL", "LocalEngine", "ModelRegistry"]


def __getattr__(name: str) -> Any:
    if name == "LocalEngine":
        from trainer.ml.engine import LocalEngine

        return LocalEngine
    raise AttributeError(name)
