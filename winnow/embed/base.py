"""The embedder interface and device selection.

An embedder turns items of one modality into L2-normalised float32 vectors. It works in two steps
so that decoding can run on worker threads while the model computes: :meth:`Embedder.prepare`
turns one payload (an image path, a text, a table row) into model input and raises on bad input;
:meth:`Embedder.embed` turns a list of prepared inputs into an ``(n, dim)`` array.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from winnow.errors import ConfigError


class Embedder(Protocol):
    """What every embedder provides."""

    model_id: str
    dim: int
    modality: str
    device: str

    def prepare(self, payload: Any) -> Any:
        """Decode / tokenize one item; raise with a readable message when it cannot be used."""

    def embed(self, prepared: list[Any]) -> np.ndarray:
        """Vectors for prepared items: float32, shape ``(len(prepared), dim)``, unit L2 norm."""


def batch_order(embedder: Any, payloads: Any) -> list[int]:
    """The order to embed ``payloads`` in: by the embedder's ``cost`` of each payload when it has
    one (texts: their length, so each batch pads to similar lengths), else as given."""
    cost = getattr(embedder, "cost", None)
    if cost is None:
        return list(range(len(payloads)))
    return sorted(range(len(payloads)), key=lambda i: cost(payloads[i]))


def resolve_device(requested: str | None = None) -> str:
    """``cuda`` when available unless a device is requested; a missing CUDA is a clear error."""
    import torch

    if requested in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested} was requested but CUDA is not available; use --device cpu.")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ConfigError(f"unknown device {requested!r}; use auto, cpu or cuda[:N].")
    return requested


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
