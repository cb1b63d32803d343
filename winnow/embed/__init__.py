"""Embedders behind one interface, chosen by a model spec.

Specs: ``efficientnet-lite0`` (images, default), ``minilm`` (texts, default), ``tabular`` (tables,
default), ``open_clip:ARCH:PATH`` (images or texts, weights from a local checkpoint) and
``precomputed:ID`` (vectors the caller put in the cache beforehand, see ``winnow.audit(embeddings=)``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from winnow.embed.base import Embedder, l2_normalize, resolve_device
from winnow.embed.runner import EmbedResult, embed_payloads
from winnow.errors import ConfigError, ModelError

__all__ = ["DEFAULT_MODELS", "Embedder", "EmbedResult", "embed_payloads", "get_embedder", "l2_normalize", "resolve_device"]

DEFAULT_MODELS: dict[str, str] = {"image": "efficientnet-lite0", "text": "minilm", "tabular": "tabular"}
_BUILTIN: dict[str, str] = {"efficientnet-lite0": "image", "minilm": "text", "tabular": "tabular"}


def get_embedder(spec: str | None, modality: str, device: str | None = None, features: pd.DataFrame | None = None) -> Embedder:
    """Build (or reuse) the embedder named by ``spec`` for ``modality``.

    ``features`` is required for the tabular encoder, which is fitted on the table it embeds.
    """
    spec = spec or DEFAULT_MODELS[modality]
    if spec.startswith("precomputed:"):
        return Precomputed(spec, modality)
    if spec.startswith("open_clip:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ConfigError(f"model spec {spec!r} is incomplete; write open_clip:ARCH:/path/to/checkpoint.")
        if modality not in ("image", "text"):
            raise ConfigError("open_clip embeds images and texts, not tables; drop --model for tabular data.")
        return _cached_open_clip(parts[1], parts[2], modality, resolve_device(device))
    if spec not in _BUILTIN:
        raise ConfigError(f"unknown model {spec!r}; use one of {', '.join(_BUILTIN)} or open_clip:ARCH:PATH.")
    if _BUILTIN[spec] != modality:
        raise ConfigError(f"model {spec!r} embeds {_BUILTIN[spec]} data, but this dataset is {modality}; use --model {DEFAULT_MODELS[modality]}.")
    if spec == "tabular":
        if features is None:
            raise ConfigError("the tabular encoder needs the table's features to fit on.")
        from winnow.embed.tabular import TabularEncoder

        return TabularEncoder(features)
    return _cached_builtin(spec, resolve_device(device))


class Precomputed:
    """Vectors supplied by the caller and already in the cache: nothing is ever computed."""

    dim = 0
    device = "cpu"

    def __init__(self, model_id: str, modality: str) -> None:
        self.model_id = model_id
        self.modality = modality

    def prepare(self, payload: object) -> object:
        raise ModelError("no precomputed vector for this item's content; pass one embedding per row.")

    def embed(self, prepared: list) -> np.ndarray:
        raise ModelError("precomputed embeddings cannot embed new items.")


@lru_cache(maxsize=4)
def _cached_builtin(spec: str, device: str) -> Embedder:
    if spec == "efficientnet-lite0":
        from winnow.embed.images import EfficientNetLite0

        return EfficientNetLite0(device)
    from winnow.embed.texts import MiniLM

    return MiniLM(device)


@lru_cache(maxsize=4)
def _cached_open_clip(arch: str, checkpoint: str, modality: str, device: str) -> Embedder:
    from winnow.embed.images import OpenClip

    return OpenClip(arch, checkpoint, modality, device)
