"""The pure parts of incremental audits on hand-built vectors and frames (detectors/reference.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from detectors.knn import build_knn_graph
from detectors.reference import (
    exact_reference_duplicates, mark_reference_pairs, mark_reference_relations, merge_hits, sample_positions, search_chunk,
    with_reference_neighbours,
)
from winnow.findings import make_findings


def unit_rows(n, dim=8, seed=0):
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_chunked_search_equals_one_exact_search():
    reference, queries = unit_rows(50), unit_rows(7, seed=1)
    parts = [(start, *search_chunk(queries, reference[start : start + 8], 5)) for start in range(0, 50, 8)]
    sims, indices = merge_hits(parts, len(queries), 5)
    exact = np.argsort(-(queries @ reference.T), axis=1)[:, :5]
    assert (indices == exact).all()
    assert np.allclose(sims, np.take_along_axis(queries @ reference.T, exact, axis=1), atol=1e-6)


def test_unusable_rows_and_short_chunks_give_no_neighbours():
    chunk = unit_rows(3)
    chunk[1] = np.nan
    queries = unit_rows(2, seed=2)
    queries[0] = 0.0
    sims, indices = search_chunk(queries, chunk, 4)
    assert (indices[0] == -1).all() and np.isneginf(sims[0]).all()  # an all-zero query asks nothing
    assert set(indices[1, :2]) == {0, 2} and (indices[1, 2:] == -1).all()  # the NaN row is nobody's neighbour


def test_reference_neighbours_extend_the_batch_graph():
    batch = unit_rows(4)
    reference = np.vstack([batch[2] + 1e-3, unit_rows(5, seed=3)])  # reference row 0 nearly copies batch item 2
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    knn = build_knn_graph(batch, k=2)
    sims, indices = merge_hits([(0, *search_chunk(batch, reference, 2))], 4, 2)
    graph, touched = with_reference_neighbours(knn, sims, indices, k=2)
    assert graph.indices.shape == (4 + len(touched), 2)
    row = graph.indices[2]
    assert touched[row[0] - 4] == 0 and graph.similarities[2, 0] > 0.999  # its nearest is the reference copy
    assert (graph.indices[4:] == -1).all()  # reference rows have no neighbours of their own


def test_copies_of_reference_content_point_at_the_first_reference_item():
    items = pd.DataFrame({"item_id": ["new", "other"], "content_hash": ["h1", "h2"]})
    reference = pd.DataFrame({"item_id": ["old", "older_copy"], "content_hash": ["h1", "h1"], "run_id": ["r1", "r2"]})
    found = exact_reference_duplicates(items, reference)
    row = found.findings.set_index("item_id").loc["new"]
    assert list(found.findings["item_id"]) == ["new"] and row["flagged"] and row["related_item_id"] == "old"
    assert row["reason"] == "exact copy of old in run r1 (same content hash)" and json.loads(row["detail"])["group_size"] == 3
    assert found.pairs.to_dict(orient="records") == [{"item_a": "old", "item_b": "new", "similarity": 1.0, "method": "reference:content_hash"}]


def test_relations_to_reference_items_name_their_run():
    findings = make_findings(["a", "b"], "near_duplicate", [0.97, 0.2], [True, False], ["near-duplicate of x (similarity 0.970)", None],
                             [{}, {}], related_item_ids=["x", None])
    marked = mark_reference_relations(findings, {"x": "r1"}).set_index("item_id")
    assert marked.loc["a", "reason"] == "near-duplicate of x (similarity 0.970); x is in run r1"
    assert json.loads(marked.loc["a", "detail"]) == {"related_run": "r1"} and marked.loc["b", "detail"] == "{}"
    pairs = pd.DataFrame({"item_a": ["a", "c"], "item_b": ["x", "d"], "similarity": [0.97, 0.96], "method": ["embedding_cosine"] * 2})
    once = mark_reference_pairs(pairs, {"x"})
    assert once.iloc[0].to_dict() == {"item_a": "x", "item_b": "a", "similarity": 0.97, "method": "reference:embedding_cosine"}
    assert once.iloc[1]["method"] == "embedding_cosine"
    assert mark_reference_pairs(once, {"x"}).equals(once)


def test_the_sample_is_fixed_and_complete_when_small():
    assert list(sample_positions(4, 10)) == [0, 1, 2, 3]
    assert list(sample_positions(100, 10)) == list(sample_positions(100, 10)) and len(sample_positions(100, 10)) == 10
