"""Near-duplicates: pairs of items whose content is the same after an edit, grouped, one keeper per group.

Candidate pairs come from the shared kNN graph (and, for images with thumbnails, from a second
kNN graph over the thumbnails' pixels, which finds copies the embedding moved, such as a JPEG at
quality 30). Each candidate pair gets one similarity from the evidence at hand:

* **images with thumbnails** (the audit measures them; see :mod:`winnow.embed.thumbnails`): the
  pixels of the two thumbnails at their best alignment (mirrored or not, cropped up to 25 % or
  shifted a pixel or two), as trimmed correlations of intensities and of gradients
  (:func:`detectors.image_match.aligned_similarity`), fused with the embedding cosine. Each of the
  three is first *normalised against the background*, as in copy detection: a pair's distance
  ``1 - s`` is divided by each item's distance to its :data:`BACKGROUND_RANK`-th most similar
  other candidate, so a pair of plain items that resemble many others (two pairs of trousers)
  needs a far closer match than a pair of distinctive ones. The third other candidate, not the
  nearest, so that a group of up to four copies of one image still stands out; and a background
  is never farther than the nearest candidate of the run's most isolated items (the
  :data:`ISOLATED_QUANTILE`), so that in a small set, where each item's background lies in another
  class, plain look-alikes do not pass for copies. The weighted mean of the three log distance
  ratios ``x`` becomes the score ``1 / (1 + e^-x)``: 0.5 when the pair is as close as the items'
  background, 0.85 (the default ``verified_threshold``) when about six times closer. That bar is
  set for precision: on the image benchmark every pair it flags is a planted copy, and it finds
  80 % of them (87 % at 0.8, but small sets of plain look-alikes reach 0.8).
* **texts**: the embedding cosine fused with the Jaccard similarity of the two texts' word sets,
  ``1 - sqrt((1 - cosine) * (1 - jaccard))`` (the geometric mean of the two distances): a reworded
  review keeps most of its words, a review on the same topic does not.
* **otherwise** (tables, vectors alone, images without thumbnails): the embedding cosine or, when
  perceptual hashes are given and the cosine is at least ``min_cosine``, the pHash similarity
  ``1 - (1 - threshold) * hamming / phash_max_distance`` if that is higher (so a Hamming distance of
  ``phash_max_distance`` bits lands exactly on the threshold and identical hashes on 1); the cosine
  guard stops unrelated images with colliding hashes (blank frames) from pairing.

Pairs whose similarity reaches the threshold (``verified_threshold`` for verified image pairs,
``threshold`` otherwise) are edges; pairs of items with the same content hash are exact duplicates
and are left to that detector. Connected components form groups; each group keeps its first-seen
item. Scores are chosen so that ``flagged`` is exactly ``score >= threshold``: a non-keeper scores
its strongest edge inside the group, a keeper or an ungrouped item its most similar candidate
outside its group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from detectors.image_match import aligned_similarity, pixel_vectors
from detectors.knn import KnnGraph, build_knn_graph
from detectors.result import Detection
from winnow.findings import make_findings

METHOD = "embedding_cosine"
FUSED_METHOD = "phash+embedding"
PIXEL_METHOD = "pixels+embedding"
TEXT_METHOD = "words+embedding"
DEFAULT_THRESHOLD = 0.95
VERIFIED_THRESHOLD = 0.85
BACKGROUND_RANK = 3
"""Which other candidate of an item is its background (see the module docstring)."""
ISOLATED_QUANTILE = 0.1
"""Backgrounds are capped at the nearest-candidate similarity of this quantile of items (see
:func:`normalised_closeness`); on the image benchmark 0.1 raised pair AP from 0.967 to 0.971."""
PIXEL_NEIGHBOURS = 5
"""Candidates per image from the thumbnails' own kNN graph, besides the embedding's neighbours."""
EVIDENCE_WEIGHTS = {"pixels": 0.35, "gradients": 0.35, "cosine": 0.3}
"""Weights of the normalised evidence of a verified image pair. On the image benchmark each alone
reached pair AP 0.967 (pixels), 0.967 (gradients) and 0.704 (cosine); together 0.971."""
_CLOSE = 1e-4
"""Distances below this count as this (a log distance ratio stays finite for identical pixels)."""
_WORD = re.compile(r"\w+")


@dataclass
class Candidates:
    """Unique candidate pairs ``a < b`` (row positions) of items with different content, their
    similarity, how it was reached, and any evidence worth showing (one array per name)."""

    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray
    method: np.ndarray
    evidence: dict[str, np.ndarray] = field(default_factory=dict)


def hamming_to_neighbours(hashes: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Bits that differ between each item's 64-bit hash (hex) and each neighbour's."""
    values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    return np.bitwise_count(values[:, None] ^ values[np.where(indices >= 0, indices, 0)]).astype(np.int64)


def fused_similarities(knn: KnnGraph, hashes: np.ndarray | None, threshold: float, phash_max_distance: int, min_cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """``(similarity, from_phash)`` per kNN pair on the cosine scale (see the module docstring)."""
    cosine = knn.similarities
    if hashes is None or knn.k == 0:
        return cosine, np.zeros(cosine.shape, bool)
    hamming = hamming_to_neighbours(hashes, knn.indices)
    phash = 1.0 - (1.0 - threshold) * hamming / max(phash_max_distance, 1)
    use = (cosine >= min_cosine) & (phash > cosine) & (knn.indices >= 0)
    return np.where(use, phash, cosine).astype(np.float32), use


def _unique_pairs(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, content: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``a < b`` of items with different content, once each: ``(a, b, position)``, where
    ``position`` is the entry of ``rows`` / ``cols`` / ``values`` kept for the pair (its highest value)."""
    position = np.flatnonzero((cols >= 0) & (rows != cols))
    position = position[content[rows[position]] != content[cols[position]]]
    a, b = np.minimum(rows, cols)[position], np.maximum(rows, cols)[position]
    order = np.lexsort((-values[position], b, a))
    a, b, position = a[order], b[order], position[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])] if len(a) else np.zeros(0, bool)
    return a[first], b[first], position[first]


def _graph_edges(knn: KnnGraph, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kNN graph's directed edges as flat ``(rows, cols, values)``."""
    n = knn.indices.shape[0]
    return np.repeat(np.arange(n), knn.k), knn.indices.ravel(), np.asarray(values).ravel()


def word_jaccard(texts: list[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the lower-cased word sets of ``texts[a[i]]`` and ``texts[b[i]]``;
    NaN where either text has no word."""
    words = [frozenset(_WORD.findall(t.lower())) if isinstance(t, str) else frozenset() for t in texts]
    out = np.full(len(a), np.nan)
    for n, (i, j) in enumerate(zip(a.tolist(), b.tolist())):
        if words[i] and words[j]:
            out[n] = len(words[i] & words[j]) / len(words[i] | words[j])
    return out


def background(a: np.ndarray, b: np.ndarray, values: np.ndarray, n: int, rank: int = BACKGROUND_RANK) -> tuple[np.ndarray, np.ndarray]:
    """For each pair, each side's background: the ``rank``-th highest value among that item's
    *other* candidate pairs (its lowest when it has fewer, 0 when it has none), for item ``a`` and
    for item ``b``."""
    m = len(a)
    members = np.r_[a, b]
    both = np.r_[values, values].astype(np.float64)
    order = np.lexsort((-both, members))
    sorted_members, sorted_values = members[order], both[order]
    starts = np.searchsorted(sorted_members, np.arange(n))
    counts = np.bincount(members, minlength=n)
    position = np.empty(2 * m, np.int64)
    position[order] = np.arange(2 * m) - starts[sorted_members]  # each entry's place in its item's ranking
    others = counts[members] - 1
    place = np.minimum(rank, np.maximum(others, 1)) - 1
    place = place + (position <= place)  # skip the pair's own entry
    found = others > 0
    out = np.zeros(2 * m)
    out[found] = sorted_values[(starts[members] + place)[found]]
    return out[:m], out[m:]


def normalised_closeness(a: np.ndarray, b: np.ndarray, similarity: np.ndarray, n: int) -> np.ndarray:
    """Log of the ratio between the items' background distance and the pair's distance (see the
    module docstring); 0 when the pair is exactly as close as the background.

    A background is never farther than the nearest candidate of an item at the
    :data:`ISOLATED_QUANTILE` of the run (its most isolated items excepted): far from everything,
    an item's neighbourhood says little about how close a copy must be, and in a small set, where
    every item's background lies in another class, look-alikes would otherwise pass for copies."""
    distance = np.clip(1.0 - similarity, _CLOSE, None)
    background_a, background_b = background(a, b, similarity, n)
    nearest = np.full(n, -np.inf)
    np.maximum.at(nearest, np.r_[a, b], np.r_[similarity, similarity])
    reached = nearest[np.isfinite(nearest)]
    if len(reached):
        floor = np.quantile(reached, ISOLATED_QUANTILE)
        background_a, background_b = np.maximum(background_a, floor), np.maximum(background_b, floor)
    return 0.5 * (np.log(np.clip(1.0 - background_a, _CLOSE, None)) + np.log(np.clip(1.0 - background_b, _CLOSE, None))) - np.log(distance)


def knn_candidates(items: pd.DataFrame, knn: KnnGraph, hashes: np.ndarray | None, threshold: float, phash_max_distance: int, min_cosine: float) -> Candidates:
    """The kNN graph's pairs on the cosine scale: fused with pHash for images, with word overlap for texts."""
    similarities, from_phash = fused_similarities(knn, hashes, threshold, phash_max_distance, min_cosine)
    content = items["content_hash"].to_numpy()
    rows, cols, values = _graph_edges(knn, similarities)
    a, b, kept = _unique_pairs(rows, cols, values, content)
    similarity = values[kept]
    method = np.where(from_phash.ravel()[kept], FUSED_METHOD, METHOD).astype(object)
    texts = items["text"].tolist() if "text" in items and items["text"].notna().any() else None
    if texts is None:
        return Candidates(a, b, similarity, method)
    jaccard = word_jaccard(texts, a, b)
    has_words = ~np.isnan(jaccard)
    cosine = np.clip(similarity, -1.0, 1.0)
    words = np.where(has_words, 1.0 - np.sqrt(np.clip(1.0 - cosine, 0, None) * (1.0 - np.nan_to_num(jaccard))), cosine)
    return Candidates(a, b, words, np.where(has_words, TEXT_METHOD, method).astype(object), {"cosine": cosine, "word_jaccard": jaccard})


def verified_candidates(items: pd.DataFrame, knn: KnnGraph, thumbnails: np.ndarray, vectors: np.ndarray | None) -> Candidates:
    """Candidate image pairs (the kNN graph's, plus the thumbnails' own nearest neighbours when
    ``vectors`` give their cosine) scored by normalised pixel, gradient and embedding evidence."""
    n = len(items)
    content = items["content_hash"].to_numpy()
    rows, cols, cosine = _graph_edges(knn, knn.similarities)
    if vectors is not None and n > 1:
        pixel_knn = build_knn_graph(pixel_vectors(thumbnails), k=min(PIXEL_NEIGHBOURS, n - 1))
        extra_rows, extra_cols, _ = _graph_edges(pixel_knn, pixel_knn.similarities)
        rows, cols = np.r_[rows, extra_rows], np.r_[cols, extra_cols]
        cosine = np.r_[cosine, np.full(len(extra_rows), -np.inf, np.float32)]
    a, b, kept = _unique_pairs(rows, cols, cosine, content)
    cosine = cosine[kept]
    if vectors is not None:
        cosine = np.einsum("ij,ij->i", vectors[a], vectors[b])
    matched = aligned_similarity(thumbnails, a, b)
    evidence = {"pixels": matched[:, 0], "gradients": matched[:, 1], "cosine": cosine}
    closeness = sum(w * normalised_closeness(a, b, evidence[name], n) for name, w in EVIDENCE_WEIGHTS.items())
    score = 1.0 / (1.0 + np.exp(-closeness))
    return Candidates(a, b, score, np.full(len(a), PIXEL_METHOD, dtype=object), evidence)


def detect_near_duplicate(
    items: pd.DataFrame, *, knn: KnnGraph, hashes: np.ndarray | None = None, thumbnails: np.ndarray | None = None,
    vectors: np.ndarray | None = None, threshold: float = DEFAULT_THRESHOLD, phash_max_distance: int = 4, min_cosine: float = 0.75,
    verified_threshold: float = VERIFIED_THRESHOLD,
) -> Detection:
    """Group near-duplicates; ``items`` (``item_id``, ``ordinal``, ``content_hash``, and ``text``
    for texts), ``knn``, ``hashes`` (pHash hex strings), ``thumbnails`` (``(n, side, side)``
    greyscale) and ``vectors`` (the L2-normalised embeddings) are row-aligned.

    With ``thumbnails`` the image pairs are verified on their pixels and flagged at
    ``verified_threshold`` (see the module docstring); otherwise similarities are on the cosine
    scale and flagged at ``threshold``.
    """
    if thumbnails is not None and len(items):
        candidates = verified_candidates(items, knn, np.asarray(thumbnails), vectors)
        cut = verified_threshold
    else:
        candidates = knn_candidates(items, knn, hashes, threshold, phash_max_distance, min_cosine)
        cut = threshold
    return _grouped(items, candidates, cut)


def _grouped(items: pd.DataFrame, c: Candidates, threshold: float) -> Detection:
    """Groups, keepers, scores and pairs from scored candidate pairs (see the module docstring)."""
    n = len(items)
    ids = items["item_id"].astype(str).to_numpy()
    strong = c.similarity >= threshold
    graph = coo_matrix((np.ones(int(strong.sum())), (c.a[strong], c.b[strong])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component, minlength=component.max() + 1 if n else 0)
    ordinals = items["ordinal"].to_numpy()
    order = np.lexsort((ordinals, component))
    first = np.r_[True, component[order][1:] != component[order][:-1]] if n else np.array([], bool)
    keeper_idx = np.empty(component.max() + 1 if n else 0, dtype=np.int64)
    keeper_idx[component[order][first]] = order[first]

    grouped = sizes[component] > 1
    keeper = keeper_idx[component]
    flagged = grouped & (keeper != np.arange(n))
    # each item's strongest edge inside its group, and its most similar candidate outside it
    inside_pair = _best_pair(c, np.flatnonzero(strong), n)
    outside_pair = _best_pair(c, np.flatnonzero(component[c.a] != component[c.b]), n)
    chosen = np.where(flagged, inside_pair, outside_pair)
    scores = _at(c.similarity.astype(float), chosen, 0.0)

    group_size = sizes[component]
    keeper_ids = ids[keeper].astype(object)
    reasons = np.full(n, None, dtype=object)
    reasons[flagged] = [
        f"near-duplicate of {k} (similarity {s:.3f} >= {threshold:.3f}), group of {g}"
        for k, s, g in zip(keeper_ids[flagged], scores[flagged], group_size[flagged])
    ]
    kept = grouped & ~flagged
    reasons[kept] = [f"kept as the representative of {g} near-duplicates" for g in group_size[kept]]
    partner = np.where(_at(c.a, outside_pair, -1) == np.arange(n), _at(c.b, outside_pair, -1), _at(c.a, outside_pair, -1))
    nearest = np.where(partner >= 0, ids[np.maximum(partner, 0)].astype(object), None) if n else np.array([], object)
    details = pd.DataFrame({"similarity": scores, "threshold": threshold, "group_size": group_size, "nearest_outside_group": nearest})
    for name, values in c.evidence.items():  # the evidence behind each item's score
        details[name] = np.round(_at(values.astype(float), chosen, np.nan), 4)
    related = np.where(flagged, keeper_ids, None)
    groups = np.where(grouped, "near:" + keeper_ids, None)
    findings = make_findings(ids, "near_duplicate", scores, flagged, reasons, details, related_item_ids=related, group_ids=groups)
    edges = np.flatnonzero(strong)
    edges = edges[np.argsort(-c.similarity[edges], kind="stable")]
    pairs = pd.DataFrame({"item_a": ids[c.a[edges]], "item_b": ids[c.b[edges]], "similarity": c.similarity[edges].astype(float), "method": c.method[edges]})
    return Detection(findings, pairs)


def _at(values: np.ndarray, index: np.ndarray, default: float) -> np.ndarray:
    """``values[index]`` where ``index >= 0``, ``default`` elsewhere."""
    out = np.full(len(index), default, dtype=np.result_type(values, type(default)))
    found = index >= 0
    out[found] = values[index[found]]
    return out


def _best_pair(c: Candidates, among: np.ndarray, n: int) -> np.ndarray:
    """Per item, the index of its highest-similarity candidate pair among ``among`` (-1 when none)."""
    best = np.full(n, -1, dtype=np.int64)
    if len(among) == 0:
        return best
    members = np.r_[c.a[among], c.b[among]]
    pairs = np.r_[among, among]
    order = np.lexsort((-c.similarity[pairs], members))
    members, pairs = members[order], pairs[order]
    first = np.r_[True, members[1:] != members[:-1]]
    best[members[first]] = pairs[first]
    return best
