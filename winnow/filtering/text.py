"""Per-document text work, batched: normalisation, the exact-dedup hash, word shingles and their
MinHash signatures.

Signatures are datasketch's ``affine32`` MinHash (the permutations of ``MinHash(num_perm, seed)``
and its MurmurHash3 pre-mix), computed for a whole batch of documents in one numpy pass instead of
one ``MinHash`` object per document: the values are identical to ``MinHash.update_batch`` on the
same shingle hashes (tests check this), at about half the cost per document, which is what the
20k documents/s target on two cores needs (``bench/results/filter.md``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd
from datasketch import MinHash
from datasketch.minhash import _fmix

from winnow.datasets.hashing import hash_bytes, normalize_text

WORD = re.compile(r"\w+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SHINGLE_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_SHINGLES = 1024
"""Shingles per numpy block when computing signatures: small enough that the block stays in cache."""


def normalize_document(text: str) -> str:
    """Unicode NFC, runs of spaces and tabs collapsed to one space, lines stripped, more than one
    blank line collapsed to one, and no leading or trailing blank lines: what the filtered shards
    hold (case and punctuation are kept)."""
    text = unicodedata.normalize("NFC", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def exact_key(normalized: str) -> int:
    """64 bits of ``winnow.datasets.hashing.hash_text`` for a text already put through
    ``normalize_text``: two texts that differ only in case, spacing or Unicode form share it."""
    return int(hash_bytes(normalized.encode("utf-8"))[:16], 16)


def dedup_form(text: str) -> str:
    """The form exact and fuzzy dedup compare: ``normalize_text`` (NFKC, case-folded, whitespace collapsed)."""
    return normalize_text(text)


def shingle_hashes(texts: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word ``size``-grams of each text, all texts concatenated, and the count per
    text. Words are ``\\w+`` runs (punctuation is ignored); a text with fewer words than ``size``
    has one shingle of all its words; a text with no word has none."""
    tokens = [WORD.findall(text) for text in texts]
    lengths = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
    flat = [word for words in tokens for word in words]
    if not flat:
        return np.zeros(0, np.uint32), np.zeros(len(texts), np.int64)
    hashes = pd.util.hash_array(np.array(flat, dtype=object), categorize=False)
    total = len(hashes)
    index = np.arange(total)
    ends = np.repeat(np.cumsum(lengths), lengths)  # where each word's text ends
    combined = hashes.copy()
    for k in range(1, size):
        inside = index + k < ends  # a shingle never reaches into the next text
        following = np.zeros_like(hashes)
        following[inside] = hashes[index[inside] + k]
        combined = combined * _SHINGLE_MIX + following
    counts = np.where(lengths >= size, lengths - size + 1, np.minimum(lengths, 1))
    position = index - (ends - np.repeat(lengths, lengths))
    valid = position < np.repeat(counts, lengths)
    folded = (combined ^ (combined >> np.uint64(32))).astype(np.uint32)
    return folded[valid], counts


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> np.ndarray:
    """datasketch's ``affine32`` permutation parameters ``(a, b)`` for ``num_perm`` and ``seed``."""
    return MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations


def signatures(shingles: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures, ``(len(counts), num_perm)`` uint32: row ``i`` equals
    ``MinHash(num_perm, seed, scheme="affine32")`` updated with text ``i``'s shingle hashes. A text
    with no shingle gets the empty signature (all values at the maximum)."""
    a, b = permutations(num_perm, seed)
    out = np.full((len(counts), num_perm), np.iinfo(np.uint32).max, np.uint32)
    nonempty = np.flatnonzero(counts > 0)
    if len(nonempty) == 0:
        return out
    mixed = _fmix(shingles.astype(np.uint32), 32)
    offsets = np.concatenate([[0], np.cumsum(counts[nonempty])])
    i = 0
    while i < len(nonempty):
        j = max(i + 1, int(np.searchsorted(offsets, offsets[i] + _CHUNK_SHINGLES, side="right")) - 1)
        j = min(j, len(nonempty))
        block = mixed[offsets[i] : offsets[j], None] * a + b
        out[nonempty[i:j]] = np.minimum.reduceat(block, offsets[i:j] - offsets[i], axis=0)
        i = j
    return out


@lru_cache(maxsize=8)
def _band_mix(rows: int) -> np.ndarray:
    return (np.random.default_rng(rows).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1))


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 32-bit key per band, ``(n, bands)``: two documents share a band's key when the band's
    ``rows`` signature values are equal (and, rarely, by collision; candidates are verified)."""
    grouped = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    h = (grouped * _band_mix(rows)).sum(axis=2, dtype=np.uint64)
    return (h ^ (h >> np.uint64(32))).astype(np.uint32)


@lru_cache(maxsize=8)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's ``MinHashLSH`` choice of (bands, rows) for a Jaccard threshold."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r
