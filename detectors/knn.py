"""The shared k-nearest-neighbour graph: built once per run and handed to every detector.

Vectors are L2-normalised, so inner product is cosine similarity. On CPU the graph comes from
faiss (exact ``IndexFlatIP`` up to ``ivf_min_items``, an IVF index above it); on CUDA from blocked
torch matrix products, which are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IVF_MIN_ITEMS = 50_000
IVF_NPROBE = 16
GPU_BLOCK = 4096


@dataclass(frozen=True)
class KnnGraph:
    """Each item's ``k`` nearest other items: ``indices`` (``-1`` where fewer exist) and cosine
    ``similarities``, both ``(n, k)`` and sorted by decreasing similarity."""

    indices: np.ndarray
    similarities: np.ndarray
    method: str

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def _drop_self(indices: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = indices.shape[0]
    own = indices == np.arange(n)[:, None]
    # where an item's own row is missing from its results (ties with exact copies), drop the last column
    missing = ~own.any(axis=1)
    own[missing, -1] = True
    keep = ~own
    return indices[keep].reshape(n, -1)[:, :k], sims[keep].reshape(n, -1)[:, :k]


def _faiss_search(vectors: np.ndarray, k: int, ivf_min_items: int) -> tuple[np.ndarray, np.ndarray, str]:
    import faiss

    n, dim = vectors.shape
    if n < ivf_min_items:
        index = faiss.IndexFlatIP(dim)
        method = "faiss-flat"
    else:
        nlist = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[np.random.default_rng(0).choice(n, size=min(n, nlist * 64), replace=False)])
        index.nprobe = IVF_NPROBE
        method = f"faiss-ivf{nlist}-nprobe{IVF_NPROBE}"
    index.add(vectors)
    sims, indices = index.search(vectors, k + 1)
    return indices, sims, method


def _torch_search(vectors: np.ndarray, k: int, device: str) -> tuple[np.ndarray, np.ndarray, str]:
    import torch

    data = torch.from_numpy(vectors).to(device)
    all_sims, all_idx = [], []
    for start in range(0, data.shape[0], GPU_BLOCK):
        block = data[start : start + GPU_BLOCK] @ data.T
        sims, idx = torch.topk(block, k + 1, dim=1)
        all_sims.append(sims.cpu())
        all_idx.append(idx.cpu())
    return torch.cat(all_idx).numpy().astype(np.int64), torch.cat(all_sims).numpy(), "torch-exact"


def usable_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows that can take part in a cosine graph: every component finite and not all zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        return np.zeros(len(vectors), bool)
    return np.isfinite(vectors).all(axis=1) & np.any(vectors != 0, axis=1)


def build_knn_graph(vectors: np.ndarray, k: int = 10, *, device: str = "cpu", ivf_min_items: int = IVF_MIN_ITEMS) -> KnnGraph:
    """The ``k``-NN graph of ``vectors`` (rows L2-normalised) with each item itself left out.

    A row with a NaN or infinite component, or all zeros, is left out of the index: it gets no
    neighbours (indices ``-1``) and is nobody's neighbour, so it cannot poison the similarities of
    the others (a NaN inner product breaks faiss's ordering). The audit never gets here with such a
    row (the embed stage reports it as unreadable); this guards direct callers and cached vectors.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = vectors.shape[0]
    usable = usable_rows(vectors)
    if n and not usable.all():
        kept = np.flatnonzero(usable)
        inner = build_knn_graph(vectors[kept], k, device=device, ivf_min_items=ivf_min_items)
        indices = np.full((n, inner.k), -1, np.int64)
        sims = np.full((n, inner.k), -np.inf, np.float32)
        indices[kept] = np.where(inner.indices >= 0, kept[np.maximum(inner.indices, 0)], -1)
        sims[kept] = inner.similarities
        return KnnGraph(indices, sims, inner.method)
    k_eff = max(0, min(k, n - 1))
    if k_eff == 0:
        return KnnGraph(np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32), "none")
    if device.startswith("cuda"):
        indices, sims, method = _torch_search(vectors, k_eff, device)
    else:
        indices, sims, method = _faiss_search(vectors, k_eff, ivf_min_items)
    indices, sims = _drop_self(indices.astype(np.int64), sims.astype(np.float32), k_eff)
    sims = np.where(indices >= 0, sims, -np.inf).astype(np.float32)
    return KnnGraph(indices, sims, method)
