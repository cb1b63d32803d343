"""Batched embedding with decoding on worker threads, overlapped with the model's compute."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from winnow.embed.base import Embedder

DECODE_THREADS = 4


@dataclass
class EmbedResult:
    """Vectors for the payloads that could be used, and a reason for each that could not.

    ``vectors[i]`` belongs to ``payloads[ok[i]]``; ``errors`` maps a payload index to its reason.
    """

    vectors: np.ndarray
    ok: list[int]
    errors: dict[int, str]


def _prepare(embedder: Embedder, payload: Any) -> tuple[Any, str | None]:
    try:
        return embedder.prepare(payload), None
    except Exception as exc:  # a bad item must never stop the batch
        return None, f"cannot decode: {type(exc).__name__}: {exc}"


def embed_payloads(embedder: Embedder, payloads: Sequence[Any], batch_size: int = 32) -> EmbedResult:
    """Embed ``payloads`` in batches; the next batch is decoded while the current one computes."""
    vectors: list[np.ndarray] = []
    ok: list[int] = []
    errors: dict[int, str] = {}
    starts = list(range(0, len(payloads), batch_size))
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        def submit(start: int):
            return [pool.submit(_prepare, embedder, p) for p in payloads[start : start + batch_size]]

        pending = submit(starts[0]) if starts else []
        for n, start in enumerate(starts):
            prepared = [f.result() for f in pending]
            pending = submit(starts[n + 1]) if n + 1 < len(starts) else []
            batch, index = [], []
            for offset, (value, error) in enumerate(prepared):
                if error is None:
                    batch.append(value)
                    index.append(start + offset)
                else:
                    errors[start + offset] = error
            if batch:
                vectors.append(embedder.embed(batch))
                ok.extend(index)
    dim = embedder.dim
    stacked = np.concatenate(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    return EmbedResult(vectors=stacked, ok=ok, errors=errors)
