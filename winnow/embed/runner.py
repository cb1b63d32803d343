"""Batched embedding with decoding on worker threads, overlapped with the model's compute."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from winnow.embed.base import Embedder, batch_order

DECODE_THREADS = 4


@dataclass
class EmbedResult:
    """Vectors for the payloads that could be used, and a reason for each that could not.

    ``vectors[i]`` belongs to ``payloads[ok[i]]``; ``errors`` maps a payload index to its reason.
    """

    vectors: np.ndarray
    ok: list[int]
    errors: dict[int, str]


def unusable_vectors(vectors: np.ndarray) -> dict[int, str]:
    """Rows that cannot go into the cosine kNN graph, with the reason: a NaN or infinite component
    (it would poison every similarity computed with it) or an all-zero vector (it has no direction)."""
    if vectors.size == 0:
        return {}
    finite = np.isfinite(vectors).all(axis=1)
    zero = finite & ~np.any(vectors != 0, axis=1)
    reasons = {}
    for row in np.flatnonzero(~finite):
        kinds = " and ".join(k for k, bad in (("NaN", np.isnan(vectors[row]).any()), ("infinite", np.isinf(vectors[row]).any())) if bad)
        reasons[int(row)] = f"the model's embedding of this item has {kinds} values, so it cannot be compared with other items"
    for row in np.flatnonzero(zero):
        reasons[int(row)] = "the model's embedding of this item is all zeros (no direction), so it cannot be compared with other items"
    return reasons


def _prepare(embedder: Embedder, payload: Any) -> tuple[Any, str | None]:
    try:
        return embedder.prepare(payload), None
    except Exception as exc:  # a bad item must never stop the batch
        return None, f"cannot decode: {type(exc).__name__}: {exc}"


def embed_payloads(embedder: Embedder, payloads: Sequence[Any], batch_size: int = 32) -> EmbedResult:
    """Embed ``payloads`` in batches; the next batch is decoded while the current one computes.

    A payload that fails to decode, or whose vector is unusable (see :func:`unusable_vectors`), gets
    a reason in ``errors`` instead of a vector: it becomes a ``corrupt`` finding, not a crash.
    """
    vectors: list[np.ndarray] = []
    ok: list[int] = []
    errors: dict[int, str] = {}
    order = batch_order(embedder, payloads)
    starts = list(range(0, len(payloads), batch_size))
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        def submit(start: int):
            return [pool.submit(_prepare, embedder, payloads[i]) for i in order[start : start + batch_size]]

        pending = submit(starts[0]) if starts else []
        for n, start in enumerate(starts):
            prepared = [f.result() for f in pending]
            pending = submit(starts[n + 1]) if n + 1 < len(starts) else []
            batch, index = [], []
            for offset, (value, error) in enumerate(prepared):
                if error is None:
                    batch.append(value)
                    index.append(order[start + offset])
                else:
                    errors[order[start + offset]] = error
            if batch:
                embedded = np.asarray(embedder.embed(batch), dtype=np.float32)
                unusable = unusable_vectors(embedded)
                for row, reason in unusable.items():
                    errors[index[row]] = reason
                keep = [row for row in range(len(index)) if row not in unusable]
                vectors.append(embedded[keep])
                ok.extend(index[row] for row in keep)
    stacked = np.concatenate(vectors).astype(np.float32) if vectors else np.zeros((0, embedder.dim), np.float32)
    given = np.argsort(ok, kind="stable")  # back to the payloads' own order
    return EmbedResult(vectors=stacked[given], ok=[ok[i] for i in given], errors=dict(sorted(errors.items())))
