"""winnow's side of the benchmark: run the audit, then read everything back through ``winnow.store``.

The embeddings come from the store's embedding cache (``winnow.stages.load_vectors``), so the peers
rank exactly the vectors winnow's detectors saw.
"""

from __future__ import annotations

import json

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import winnow
from bench.planted import Planted
from bench.scoring import ItemRanking, Pair, PairRanking, canonical_pair
from winnow import stages
from winnow.config import AuditConfig
from winnow.store import Store


@dataclass
class Audited:
    """One audit's results and the inputs every method shares."""

    summary: dict[str, Any]
    audit_seconds: float
    detect_seconds: float
    embedded: pd.DataFrame
    vectors: np.ndarray
    findings: pd.DataFrame
    pairs: pd.DataFrame

    @property
    def produced(self) -> set[str]:
        """Issue types that have findings in this run."""
        return set(self.findings["issue_type"])


def audit(truth: Planted, db: str) -> Audited:
    """Audit a benchmark dataset into ``db`` and load its findings, pairs and embeddings.

    ``detect_seconds`` times the detection stage alone (kNN graph, every detector, the quality checks;
    not the table rule checks, which score nothing benchmarked) on the cached embeddings and measured
    properties, by calling it once more, so that it compares with peers that are handed the same
    embeddings; ``audit_seconds`` is the whole audit (ingest, measuring, embedding, detection, storing).
    """
    start = time.perf_counter()
    report = winnow.audit(truth.source, db=db, name=f"bench-{truth.name}", **truth.options)
    audit_seconds = time.perf_counter() - start
    store, run_id, summary = Store(db), report.run_id, report.info
    items = store.load_items(run_id)
    modality = summary["modality"]
    embedded, vectors = stages.load_vectors(store, items, store.stages(run_id)["embed"]["model_id"])
    measurer = stages.measurer_for(modality)
    properties = stages.load_properties(store, items, measurer.kind) if measurer is not None else None
    config = AuditConfig.from_dict(store.get_run(run_id)["config"])
    start = time.perf_counter()
    stages.detect_stage(items, embedded, vectors, modality, config, summary["device"], properties)
    detect_seconds = time.perf_counter() - start
    return Audited(summary, audit_seconds, detect_seconds, embedded, vectors, report.findings, report.pairs)


def item_ranking(findings: pd.DataFrame, issue_type: str) -> ItemRanking:
    """Scores and flagged items of one issue type."""
    rows = findings[findings["issue_type"] == issue_type]
    return ItemRanking(dict(zip(rows["item_id"], rows["score"].astype(float))), set(rows.loc[rows["flagged"].astype(bool), "item_id"]))


def pair_rankings(findings: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, PairRanking]:
    """winnow's duplicate answers as pair rankings.

    Asserted pairs come from the pairs table (a pair is exact when both items share an
    ``exact_duplicate`` group id, near otherwise). The near-duplicate ranking also holds every
    item's best candidate from its ``near_duplicate`` finding — the keeper it was grouped with, or
    the most similar item outside its group — scored by the item's score, so it ranks every item
    the way Datalab's does while ``flagged`` stays the asserted pairs.
    """
    exact = findings[(findings["issue_type"] == "exact_duplicate") & findings["group_id"].notna()]
    group = dict(zip(exact["item_id"], exact["group_id"]))
    split: dict[str, dict[Pair, float]] = {"exact_duplicate": {}, "near_duplicate": {}}
    for a, b, similarity in zip(pairs["item_a"], pairs["item_b"], pairs["similarity"].astype(float)):
        kind = "exact_duplicate" if a in group and group.get(a) == group.get(b) else "near_duplicate"
        pair = canonical_pair(a, b)
        split[kind][pair] = max(similarity, split[kind].get(pair, -np.inf))
    asserted = {kind: set(scores) for kind, scores in split.items()}
    near = findings[findings["issue_type"] == "near_duplicate"]
    for item, related, score, detail in zip(near["item_id"], near["related_item_id"], near["score"].astype(float), near["detail"]):
        candidate = related if isinstance(related, str) else json.loads(detail).get("nearest_outside_group")
        if not candidate or (item in group and group.get(item) == group.get(candidate)):
            continue  # no candidate, or an exact copy (scored as an exact duplicate)
        pair = canonical_pair(item, candidate)
        split["near_duplicate"][pair] = max(score, split["near_duplicate"].get(pair, -np.inf))
    return {kind: PairRanking(scores, asserted[kind]) for kind, scores in split.items()}