"""Evidence read from the texts themselves, beside their embeddings.

A sentence embedding says what a text is about, not what kind of text it is: plot summaries among
review snippets are about films too, and a review with a third of its letters garbled still lands
near other reviews. Two cheap views catch what the embedding misses:

* :func:`format_z` — the text's format against the run's: much *longer* than usual (robust z of
  the log character count, positive side only: a batch of full documents among snippets; very
  short texts are the text-quality check's job), and an *ending* that most texts do not share
  (ending like a sentence, ``. ! ? …`` or a closing quote, or not: headlines and titles among
  sentences, or the reverse), scored by how rare it is (:func:`~detectors.evidence.rarity_z`).
* :func:`character_surprisal` — how unusual the text's letter sequences are for this corpus: the
  mean surprisal (−log frequency) of its character trigrams among all *other* texts' trigrams.
  Garbled, mis-encoded or foreign-script text is full of trigrams no other text has.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from detectors.evidence import rarity_z, robust_z

SENTENCE_ENDINGS = (".", "!", "?", "…", '"', "'", "”", "’", ")")
TRIGRAM_SMOOTHING = 0.5
"""Added to every trigram count (Jeffreys-style), so a trigram no other text has costs a finite amount."""


def format_z(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """``length`` (longer than usual) and ``ending`` (rare ending) z-scores, both at least 0."""
    stripped = [str(text).strip() for text in texts]
    log_chars = np.log1p(np.array([len(text) for text in stripped], dtype=np.float64))
    ends_like_sentence = np.array([text.endswith(SENTENCE_ENDINGS) for text in stripped])
    return {"length": np.clip(robust_z(log_chars), 0.0, None), "ending": rarity_z(ends_like_sentence)}


def character_surprisal(texts: Sequence[str]) -> np.ndarray:
    """Mean surprisal, in nats, of each text's (lower-cased) character trigrams under the trigram
    frequencies of all the other texts; 0 for a text shorter than three characters."""
    vectorizer = CountVectorizer(analyzer="char", ngram_range=(3, 3), lowercase=True, dtype=np.float64)
    try:
        counts = vectorizer.fit_transform([str(text) for text in texts]).tocoo()
    except ValueError:  # no text has three characters: nothing to compare
        return np.zeros(len(texts))
    totals = np.bincount(counts.col, weights=counts.data, minlength=counts.shape[1])
    elsewhere = totals[counts.col] - counts.data  # leave the text's own trigrams out
    denominator = totals.sum() + TRIGRAM_SMOOTHING * counts.shape[1]
    surprisal = -counts.data * np.log((elsewhere + TRIGRAM_SMOOTHING) / denominator)
    per_text = np.bincount(counts.row, weights=counts.data, minlength=counts.shape[0])
    summed = np.bincount(counts.row, weights=surprisal, minlength=counts.shape[0])
    return np.divide(summed, per_text, out=np.zeros(counts.shape[0]), where=per_text > 0)
