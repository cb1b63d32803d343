"""The shared k-nearest-neighbour graph: built once per run and handed to every detector.

Vectors are L2-normalised, so inner product is cosine similarity. Which index serves a run
depends on its size (see :func:`index_kind`):

* ``flat`` — below ``ivf_min_items``: faiss ``IndexFlatIP``, exact.
* ``ivf`` — an inverted file: spherical k-means cells (``nlist = √n``), each item searched in its
  ``nprobe`` nearest cells with exact cosine. It is searched cell by cell — every query that probes
  a cell against all of that cell's members in one BLAS product (``faiss.knn``), merged per query in
  a ``faiss.ResultHeap`` — rather than query by query as faiss's ``IndexIVFFlat.search`` does: the
  neighbours an ``IndexIVFFlat`` with these cells would return, but from matrix products, which on
  this project's 2-core machines do 5–10 times more arithmetic per second than per-query scans.
* ``ivf-pca`` — from ``project_min_items`` on: the cells and candidates come from a PCA projection
  to :data:`PROJECTED_DIM` dimensions (L2 distance there, which never exceeds the true distance,
  so a near-duplicate stays near), and each item's :data:`RERANK_FACTOR` × (``k`` + 1) candidates
  are re-ranked by their exact cosine in the full space (``faiss.knn_inner_products_by_idx``).

``nprobe`` is chosen per run by a rule, never fixed: a sample of :data:`CALIBRATION_SAMPLE` items
each gets a synthetic near-duplicate at cosine :data:`NEAR_DUPLICATE_COSINE` (the near-duplicate
detector's default threshold, so the hardest pair it must still find), moved from the item towards
another random item — along a direction in which the data varies, where cell borders lie — and
``nprobe`` is the smallest number of probed cells for which at least ``recall`` (:data:`TARGET_RECALL`)
of those copies probe their original's cell. On CUDA the graph comes from blocked torch matrix products,
which are exact.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IVF_MIN_ITEMS = 20_000
"""Below this many items the graph is exact (flat index)."""
PROJECT_MIN_ITEMS = 200_000
"""From this many items on, cells and candidates come from the PCA projection."""
PROJECTED_DIM = 128
RERANK_FACTOR = 2
"""Candidates per item found in the projected space, as a multiple of ``k + 1``, re-ranked exactly."""
NEAR_DUPLICATE_COSINE = 0.95
TARGET_RECALL = 0.995
"""The issues ask for 0.99 of near-duplicates; measured on :data:`CALIBRATION_SAMPLE` copies, 0.995
keeps the true share above 0.99 by about two standard errors (√(0.99 · 0.01 / 2000) ≈ 0.0022)."""
CALIBRATION_SAMPLE = 2000
MAX_NPROBE = 64
TRAIN_POINTS_PER_CELL = 40
"""k-means trains on this many sampled items per cell (faiss warns below 39)."""
KMEANS_ITERATIONS = 10
PCA_TRAIN_ITEMS = 50_000
ROW_CHUNK = 16_384
"""Rows per piece of work when the workers share out a pass over all items."""
GPU_BLOCK_ELEMENTS = 1 << 27
"""Similarity entries per torch block (512 MiB of float32), so a block fits any GPU whatever ``n``."""


@dataclass(frozen=True)
class KnnGraph:
    """Each item's ``k`` nearest other items: ``indices`` (``-1`` where fewer exist) and cosine
    ``similarities``, both ``(n, k)`` and sorted by decreasing similarity. ``info`` says how the
    graph was built (index kind, cells, probes and the calibrated recall for an inverted file)."""

    indices: np.ndarray
    similarities: np.ndarray
    method: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def index_kind(n: int, *, ivf_min_items: int = IVF_MIN_ITEMS, project_min_items: int = PROJECT_MIN_ITEMS) -> str:
    """Which CPU index serves ``n`` items: ``flat``, ``ivf`` or ``ivf-pca`` (see the module docstring)."""
    if n < ivf_min_items:
        return "flat"
    return "ivf" if n < project_min_items else "ivf-pca"


def _drop_self(indices: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = indices.shape[0]
    own = indices == np.arange(n)[:, None]
    # where an item's own row is missing from its results (ties with exact copies), drop the last column
    missing = ~own.any(axis=1)
    own[missing, -1] = True
    keep = ~own
    return indices[keep].reshape(n, -1)[:, :k], sims[keep].reshape(n, -1)[:, :k]


def near_copies(items: np.ndarray, towards: np.ndarray, cosine: float) -> np.ndarray:
    """Unit vectors at exactly ``cosine`` from each row of ``items``, turned towards the matching
    row of ``towards`` (rows whose direction is undefined — ``towards`` parallel to the item — are NaN)."""
    along = towards - np.sum(towards * items, axis=1, keepdims=True) * items
    norms = np.linalg.norm(along, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 1e-6, along / norms, np.nan)
    return (cosine * items + math.sqrt(1.0 - cosine**2) * unit).astype(np.float32)


def calibrate_nprobe(quantizer: Any, originals: np.ndarray, copies: np.ndarray, recall: float, max_nprobe: int) -> tuple[int, float]:
    """The smallest ``nprobe`` for which at least ``recall`` of ``copies`` probe the cell of their
    original (rows of ``originals``, same space as the quantizer), and the share reached with it."""
    usable = np.isfinite(copies).all(axis=1)
    _, own = quantizer.search(originals[usable], 1)
    _, probes = quantizer.search(copies[usable], max_nprobe)
    hit = probes == own
    rank = np.where(hit.any(axis=1), hit.argmax(axis=1), max_nprobe)
    reached = np.array([np.mean(rank < p) for p in range(1, max_nprobe + 1)])
    enough = np.flatnonzero(reached >= recall)
    nprobe = int(enough[0]) + 1 if len(enough) else max_nprobe
    return nprobe, float(reached[nprobe - 1])


def _bucketed_search(space: np.ndarray, quantizer: Any, nlist: int, nprobe: int, k: int, metric: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best among the members of its ``nprobe`` nearest cells, one BLAS product per
    cell; the cells are shared out between the workers, each with its own result heap (merged at the end)."""
    import faiss

    n = len(space)
    probes = _nearest_cells(quantizer, space, nprobe)
    cell = probes[:, 0]
    members_order = np.argsort(cell, kind="stable")
    member_bounds = np.searchsorted(cell[members_order], np.arange(nlist + 1))
    probed = probes.ravel()
    query_order = np.argsort(probed, kind="stable")
    query_bounds = np.searchsorted(probed[query_order], np.arange(nlist + 1))
    query_rows = query_order // nprobe
    del probes, probed, query_order
    keep_max = metric == faiss.METRIC_INNER_PRODUCT
    heaps = [faiss.ResultHeap(n, k, keep_max=keep_max) for _ in range(_cores())]

    def search_cells(worker: int, workers: int) -> None:
        for c in range(worker, nlist, workers):
            members = members_order[member_bounds[c] : member_bounds[c + 1]]
            queries = query_rows[query_bounds[c] : query_bounds[c + 1]]
            if len(members) and len(queries):
                sims, found = faiss.knn(space[queries], space[members], min(k, len(members)), metric=metric)
                heaps[worker].add_result_subset(queries, sims, members[found])

    _in_workers(search_cells)
    merged = heaps[0]
    for other in heaps[1:]:
        merged.add_result(other.D, other.I)
    merged.finalize()
    return merged.I, merged.D


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _in_workers(work: Callable[[int, int], None]) -> None:
    """``work(worker, workers)`` on one thread per core, each running faiss single-threaded: whole
    pieces of work per thread rather than threads inside each small product, which stall one
    another on a busy machine."""
    import faiss

    workers = _cores()

    def run(worker: int) -> None:
        faiss.omp_set_num_threads(1)
        work(worker, workers)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(workers)))


def _row_chunks(n: int, worker: int, workers: int) -> Iterator[slice]:
    for start in range(worker * ROW_CHUNK, n, workers * ROW_CHUNK):
        yield slice(start, min(n, start + ROW_CHUNK))


def _nearest_cells(quantizer: Any, space: np.ndarray, nprobe: int) -> np.ndarray:
    """Each row's ``nprobe`` nearest cells, searched in row chunks shared out between the workers."""
    probes = np.empty((len(space), nprobe), np.int64)

    def assign(worker: int, workers: int) -> None:
        for rows in _row_chunks(len(space), worker, workers):
            probes[rows] = quantizer.search(space[rows], nprobe)[1]

    _in_workers(assign)
    return probes


def _project(pca: Any, vectors: np.ndarray) -> np.ndarray:
    projected = np.empty((len(vectors), pca.d_out), np.float32)

    def apply(worker: int, workers: int) -> None:
        for rows in _row_chunks(len(vectors), worker, workers):
            projected[rows] = pca.apply(vectors[rows])

    _in_workers(apply)
    return projected


def _rerank(vectors: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` candidates with the highest exact inner product (``-1`` ends a row's candidates)."""
    import faiss

    n, width = candidates.shape
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    sims = np.empty((n, k), np.float32)
    indices = np.empty((n, k), np.int64)

    def rerank(worker: int, workers: int) -> None:
        for rows in _row_chunks(n, worker, workers):
            count = rows.stop - rows.start
            faiss.knn_inner_products_by_idx(
                faiss.swig_ptr(vectors[rows]), faiss.swig_ptr(vectors), faiss.swig_ptr(candidates[rows]), vectors.shape[1], count, n, width, k,
                faiss.swig_ptr(sims[rows]), faiss.swig_ptr(indices[rows]), width,
            )

    _in_workers(rerank)
    return indices, sims


def _ivf_search(vectors: np.ndarray, k: int, *, project: bool, nprobe: int | None, recall: float) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
    import faiss

    rng = np.random.default_rng(0)
    n, dim = vectors.shape
    project = project and dim > PROJECTED_DIM
    space, metric = vectors, faiss.METRIC_INNER_PRODUCT
    if project:
        pca = faiss.PCAMatrix(dim, PROJECTED_DIM)
        pca.train(vectors[np.sort(rng.choice(n, size=min(n, PCA_TRAIN_ITEMS), replace=False))])
        space, metric = _project(pca, vectors), faiss.METRIC_L2
    nlist = max(1, round(math.sqrt(n)))
    kmeans = faiss.Kmeans(space.shape[1], nlist, niter=KMEANS_ITERATIONS, spherical=not project, seed=0, max_points_per_centroid=1 << 30)
    kmeans.train(space[np.sort(rng.choice(n, size=min(n, TRAIN_POINTS_PER_CELL * nlist), replace=False))])
    quantizer = kmeans.index
    info: dict[str, Any] = {"kind": "ivf-pca" if project else "ivf", "nlist": nlist}
    if nprobe is None:
        sample = rng.choice(n, size=min(n, CALIBRATION_SAMPLE), replace=False)
        copies = near_copies(vectors[sample], vectors[rng.choice(n, size=len(sample))], NEAR_DUPLICATE_COSINE)
        nprobe, reached = calibrate_nprobe(quantizer, space[sample], _project(pca, copies) if project else copies, recall, min(MAX_NPROBE, nlist))
        info.update(nprobe_rule=f"smallest nprobe probing the original's cell for >= {recall:.1%} of {len(sample)} synthetic near-duplicates at cosine {NEAR_DUPLICATE_COSINE}",
                    calibrated_recall=round(reached, 4))
    nprobe = max(1, min(nprobe, nlist))
    info["nprobe"] = nprobe
    width = (k + 1) * (RERANK_FACTOR if project else 1)
    indices, sims = _bucketed_search(space, quantizer, nlist, nprobe, width, metric)
    if project:
        indices, sims = _rerank(vectors, indices, k + 1)
        info.update(projected_dim=PROJECTED_DIM, reranked_candidates=width)
    name = f"faiss-ivf{nlist}-nprobe{nprobe}" + (f"-pca{PROJECTED_DIM}-rerank{width}" if project else "")
    return indices, sims, name, info


def _faiss_search(vectors: np.ndarray, k: int, kind: str, nprobe: int | None, recall: float) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
    import faiss

    if kind == "flat":
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        sims, indices = index.search(vectors, k + 1)
        return indices, sims, "faiss-flat", {"kind": "flat"}
    return _ivf_search(vectors, k, project=kind == "ivf-pca", nprobe=nprobe, recall=recall)


def torch_knn(vectors: np.ndarray, k: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k``-NN (the item itself included) by blocked torch matrix products on ``device``
    (the CUDA path; on ``"cpu"`` it runs the same code, which is how the tests check it)."""
    import torch

    data = torch.from_numpy(vectors).to(device)
    block = max(1, GPU_BLOCK_ELEMENTS // max(1, data.shape[0]))
    all_sims, all_idx = [], []
    for start in range(0, data.shape[0], block):
        sims, idx = torch.topk(data[start : start + block] @ data.T, k, dim=1)
        all_sims.append(sims.cpu())
        all_idx.append(idx.cpu())
    return torch.cat(all_idx).numpy().astype(np.int64), torch.cat(all_sims).numpy()


def usable_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows that can take part in a cosine graph: every component finite and not all zero.

    One pass over the data (each row's sum of squares) settles almost every row; only rows whose
    sum is zero or not finite (an overflow, an underflow, a NaN) are checked component by component.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        return np.zeros(len(vectors), bool)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        squares = np.einsum("ij,ij->i", vectors, vectors)
    usable = np.isfinite(squares) & (squares > 0)
    unsure = np.flatnonzero(~usable)
    usable[unsure] = np.isfinite(vectors[unsure]).all(axis=1) & np.any(vectors[unsure] != 0, axis=1)
    return usable


def build_knn_graph(
    vectors: np.ndarray, k: int = 10, *, device: str = "cpu", ivf_min_items: int = IVF_MIN_ITEMS,
    project_min_items: int = PROJECT_MIN_ITEMS, nprobe: int | None = None, recall: float = TARGET_RECALL,
) -> KnnGraph:
    """The ``k``-NN graph of ``vectors`` (rows L2-normalised) with each item itself left out.

    On CPU the index follows :func:`index_kind`; ``nprobe`` fixes the inverted file's probes
    instead of calibrating them for ``recall`` of near-duplicates (see the module docstring).

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
        inner = build_knn_graph(vectors[kept], k, device=device, ivf_min_items=ivf_min_items, project_min_items=project_min_items,
                                nprobe=nprobe, recall=recall)
        indices = np.full((n, inner.k), -1, np.int64)
        sims = np.full((n, inner.k), -np.inf, np.float32)
        indices[kept] = np.where(inner.indices >= 0, kept[np.maximum(inner.indices, 0)], -1)
        sims[kept] = inner.similarities
        return KnnGraph(indices, sims, inner.method, inner.info)
    k_eff = max(0, min(k, n - 1))
    if k_eff == 0:
        return KnnGraph(np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32), "none")
    if device.startswith("cuda"):
        indices, sims = torch_knn(vectors, k_eff + 1, device)
        method, info = "torch-exact", {"kind": "exact", "device": device}
    else:
        kind = index_kind(n, ivf_min_items=ivf_min_items, project_min_items=project_min_items)
        indices, sims, method, info = _faiss_search(vectors, k_eff, kind, nprobe, recall)
    indices, sims = _drop_self(indices.astype(np.int64), sims.astype(np.float32), k_eff)
    sims = np.where(indices >= 0, sims, -np.inf).astype(np.float32)
    return KnnGraph(indices, sims, method, info)
