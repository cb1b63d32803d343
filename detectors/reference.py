"""Incremental audits: a new batch against a reference corpus, without an all-pairs join.

Pure functions (arrays and frames in, arrays and frames out); the audit flow reads the reference
from the store one chunk at a time and hands each chunk here.

* :func:`search_chunk` and :func:`merge_hits` — each batch vector's ``k`` most similar reference
  vectors, found chunk by chunk with a faiss flat (exact) index per chunk and merged with faiss's
  ``ResultHeap``: memory holds one chunk of the reference and ``n_batch × k`` results, never the
  reference × batch similarity matrix, and the chunks can be searched on different workers.
* :func:`with_reference_neighbours` — the batch's own kNN graph merged with those hits, over the
  batch plus the reference items it touches, for the near-duplicate detector: a new item that
  copies a reference item is grouped with it, and the reference item (seen first) is the keeper.
* :func:`exact_reference_duplicates` — batch items whose content hash a reference item already has.
* :func:`mark_reference_relations` and :func:`mark_reference_pairs` — findings and pairs that
  point at a reference item say which run holds it (``detail.related_run``, the reason, and the
  pair method's ``reference:`` prefix), since its id is not an item of the new run.
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from detectors.knn import KnnGraph, usable_rows
from detectors.result import Detection
from winnow.findings import make_findings

REFERENCE_PREFIX = "reference:"
"""Prefix of the ``method`` of a pair whose ``item_a`` is a reference item (``reference:content_hash``)."""


def search_chunk(queries: np.ndarray, chunk: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(similarities, indices)``, both ``(n_queries, k)``: each query's ``k`` most similar rows of
    ``chunk`` by inner product (cosine for L2-normalised rows), best first; index ``-1`` and
    similarity ``-inf`` where the chunk has fewer usable rows. Rows or queries with NaN, infinite
    or all-zero components take no part (see :func:`detectors.knn.usable_rows`)."""
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    sims = np.full((len(queries), k), -np.inf, np.float32)
    indices = np.full((len(queries), k), -1, np.int64)
    rows = np.flatnonzero(usable_rows(chunk))
    asking = np.flatnonzero(usable_rows(queries)) if len(queries) else np.zeros(0, np.int64)
    k_eff = min(k, len(rows))
    if k_eff == 0 or len(asking) == 0:
        return sims, indices
    index = faiss.IndexFlatIP(chunk.shape[1])
    index.add(np.ascontiguousarray(chunk[rows], dtype=np.float32))
    found_sims, found = index.search(queries[asking], k_eff)
    sims[asking, :k_eff] = np.where(found >= 0, found_sims, -np.inf)
    indices[asking, :k_eff] = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
    return sims, indices


def merge_hits(parts: Iterable[tuple[int, np.ndarray, np.ndarray]], n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-chunk results ``(offset, similarities, indices)`` into each query's overall ``k``
    best, with indices shifted by each chunk's ``offset`` (its first row's position in the whole
    reference). Same shape and conventions as :func:`search_chunk`; ties keep the earlier chunk."""
    import faiss

    heap = faiss.ResultHeap(n_queries, k, keep_max=True)
    for offset, sims, indices in parts:
        found = indices >= 0
        heap.add_result(
            D=np.ascontiguousarray(np.where(found, sims, -np.inf), dtype=np.float32),
            I=np.ascontiguousarray(np.where(found, indices + offset, -1), dtype=np.int64),
        )
    heap.finalize()
    indices = heap.I.astype(np.int64)
    return np.where(indices >= 0, heap.D, -np.inf).astype(np.float32), indices


def with_reference_neighbours(batch: KnnGraph, hit_sims: np.ndarray, hit_indices: np.ndarray, k: int) -> tuple[KnnGraph, np.ndarray]:
    """One kNN graph over the batch followed by the reference items its items touch.

    Each batch row keeps its ``k`` most similar neighbours among its own graph (``batch``) and its
    reference hits (``hit_indices`` = positions in the reference, as from :func:`merge_hits`).
    Rows ``n_batch + j`` stand for reference item ``touched[j]`` and have no neighbours of their own
    (``-1``): detectors that read edges from every row see each batch–reference edge once. Returns
    the graph and ``touched`` (sorted reference positions).
    """
    n = batch.indices.shape[0]
    found = hit_indices >= 0
    touched, inverse = np.unique(hit_indices[found], return_inverse=True)
    reference_columns = np.full(hit_indices.shape, -1, np.int64)
    reference_columns[found] = n + inverse
    columns = np.concatenate([batch.indices, reference_columns], axis=1)
    sims = np.concatenate([batch.similarities, np.where(found, hit_sims, -np.inf)], axis=1).astype(np.float32)
    sims = np.where(columns >= 0, sims, -np.inf)
    width = min(k, columns.shape[1])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :width]
    top_columns = np.take_along_axis(columns, order, axis=1)
    top_sims = np.take_along_axis(sims, order, axis=1)
    top_columns = np.where(np.isfinite(top_sims), top_columns, -1)
    indices = np.vstack([top_columns, np.full((len(touched), width), -1, np.int64)])
    similarities = np.vstack([top_sims, np.full((len(touched), width), -np.inf, np.float32)])
    return KnnGraph(indices, similarities, f"{batch.method}+reference"), touched


def exact_reference_duplicates(items: pd.DataFrame, reference: pd.DataFrame) -> Detection:
    """``exact_duplicate`` findings for the batch items whose content a reference item already has.

    ``items``: the batch's readable items (``item_id``, ``content_hash``); ``reference``:
    ``item_id``, ``content_hash``, ``run_id``, first-seen first. Each such item is a flagged copy
    (score 1) of the first reference item with its content, which keeps the group; the pairs run
    from that reference item to each copy with method ``reference:content_hash``. Items whose
    content is new get no row here (the batch's own detector scores them).
    """
    first = reference.drop_duplicates("content_hash").set_index("content_hash")
    copies = items[items["content_hash"].isin(first.index)]
    keepers = first.loc[copies["content_hash"], "item_id"].astype(str).to_numpy()
    runs = first.loc[copies["content_hash"], "run_id"].astype(str).to_numpy()
    sizes = reference.groupby("content_hash").size().add(items.groupby("content_hash").size(), fill_value=0)
    findings = make_findings(
        copies["item_id"], "exact_duplicate", scores=np.ones(len(copies)), flagged=np.ones(len(copies), bool),
        reasons=[f"exact copy of {keeper} in run {run} (same content hash)" for keeper, run in zip(keepers, runs)],
        details=[{"content_hash": h, "group_size": int(sizes[h]), "related_run": run} for h, run in zip(copies["content_hash"], runs)],
        related_item_ids=keepers, group_ids=[f"exact:{keeper}" for keeper in keepers],
    )
    pairs = pd.DataFrame({
        "item_a": pd.Series(keepers, dtype=object), "item_b": pd.Series(copies["item_id"].astype(str).to_numpy(), dtype=object),
        "similarity": np.ones(len(copies)), "method": pd.Series([f"{REFERENCE_PREFIX}content_hash"] * len(copies), dtype=object),
    })
    return Detection(findings, pairs)


def mark_reference_relations(findings: pd.DataFrame, origin: Mapping[str, str]) -> pd.DataFrame:
    """``findings`` where each row whose ``related_item_id`` is a reference item (``origin`` maps
    its id to the run that holds it) records ``related_run`` in its detail and, when flagged,
    ends its reason with where that item is. Other rows are returned unchanged."""
    related = findings["related_item_id"]
    hit = related.isin(list(origin)).to_numpy() if len(findings) else np.zeros(0, bool)
    if not hit.any():
        return findings
    out = findings.copy()
    for row in np.flatnonzero(hit):
        item = out["related_item_id"].iat[row]
        run = origin[item]
        detail = json.loads(out["detail"].iat[row] or "{}")
        if detail.get("related_run") == run:
            continue  # written by exact_reference_duplicates, which names the run itself
        out.iat[row, out.columns.get_loc("detail")] = json.dumps({**detail, "related_run": run}, sort_keys=True)
        reason = out["reason"].iat[row]
        if isinstance(reason, str):
            out.iat[row, out.columns.get_loc("reason")] = f"{reason}; {item} is in run {run}"
    return out


def mark_reference_pairs(pairs: pd.DataFrame, reference_ids: set[str]) -> pd.DataFrame:
    """``pairs`` with each batch–reference pair written reference item first and its method
    prefixed with ``reference:`` (once); pairs within the batch are unchanged."""
    if pairs.empty:
        return pairs
    b_is_reference = pairs["item_b"].isin(reference_ids)
    a_is_reference = pairs["item_a"].isin(reference_ids) | b_is_reference
    out = pairs.copy()
    out.loc[b_is_reference, ["item_a", "item_b"]] = pairs.loc[b_is_reference, ["item_b", "item_a"]].to_numpy()
    unmarked = a_is_reference & ~out["method"].astype(str).str.startswith(REFERENCE_PREFIX)
    out.loc[unmarked, "method"] = REFERENCE_PREFIX + out.loc[unmarked, "method"].astype(str)
    return out


def sample_positions(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most ``size`` of ``n`` rows, drawn without replacement (all of them
    when ``n <= size``); the same arguments always give the same sample."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
