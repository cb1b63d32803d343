"""Per-document text work, batched: normalisation, the exact-dedup hash, word shingles and their
MinHash signatures.

Everything here works on a whole batch of documents at once, because per-document Python calls
were most of the cost of measuring a shard (``bench/results/filter.md`` has the µs per document):

* :func:`dedup_forms` is ``winnow.datasets.hashing.normalize_text`` with a shortcut for ASCII
  texts (NFKC leaves them as they are and case-folding is ``lower``; a text with single blanks
  only needs no collapsing), and ``str.split`` in place of the ``\\s+`` regular expression (both
  split on exactly the characters ``str.isspace`` accepts).
* :func:`shingle_hashes` finds the words of the whole batch in one pass over its UTF-8 bytes
  (ASCII punctuation becomes a space, then ``bytes.split``); only the rare pieces holding non-ASCII
  characters go through the ``\\w+`` regular expression. The words and their hashes are those of
  ``re.findall(r"\\w+")`` and ``pandas.util.hash_array`` (pandas hashes a ``str`` as its UTF-8
  bytes), as before.
* :func:`signatures` is datasketch's ``affine32`` MinHash (the permutations of
  ``MinHash(num_perm, seed)`` and its MurmurHash3 pre-mix) for all documents in one numpy pass,
  laid out permutation-major so the per-document minimum runs over contiguous memory: the values
  are identical to ``MinHash.update_batch`` on the same shingle hashes (tests check this).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd
from datasketch import MinHash
from datasketch.minhash import _fmix

WORD = re.compile(r"\w+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SHINGLE_MIX = np.uint64(0x9E3779B97F4A7C15)
_SPACE = 0x20
_WORD_BYTES = bytes(b if b >= 0x80 or chr(b).isalnum() or b == 0x5F else _SPACE for b in range(256))
"""``bytes.translate`` table: ASCII bytes that ``\\w`` does not match become a space; ASCII word
bytes and every byte of a multi-byte UTF-8 character stay."""
_CHUNK_SHINGLES = 16_384
"""Shingles per numpy block when computing signatures (a block is ``num_perm`` × this many uint32:
8 MiB at 128 permutations); measured fastest between 4k and 32k."""


def normalize_document(text: str) -> str:
    """Unicode NFC, runs of spaces and tabs collapsed to one space, lines stripped, more than one
    blank line collapsed to one, and no leading or trailing blank lines: what the filtered shards
    hold (case and punctuation are kept)."""
    if not text.isascii():  # ASCII is always NFC
        text = unicodedata.normalize("NFC", text)
    lines = text.splitlines()
    if len(lines) == 1:  # most documents: the general path below gives the same
        return " ".join(lines[0].split())
    joined = "\n".join([" ".join(line.split()) for line in lines])
    return (_BLANK_RUNS.sub("\n\n", joined) if "\n\n\n" in joined else joined).strip()


_ASCII_SPACES_BUT_BLANK = ("\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1f", "\x1e")
"""The ASCII characters besides the blank that ``str.split`` splits on."""


def dedup_form(text: str) -> str:
    """The form exact and fuzzy dedup compare: ``winnow.datasets.hashing.normalize_text`` (NFKC,
    case-folded, whitespace collapsed), computed faster and equal to it for every text."""
    if not text.isascii():
        return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    if "  " in text or text[:1] == " " or text[-1:] == " " or any(c in text for c in _ASCII_SPACES_BUT_BLANK):
        return " ".join(text.lower().split())
    return text.lower()  # single blanks only: collapsing would change nothing


def dedup_forms(texts: list[str]) -> list[str]:
    """:func:`dedup_form` of each text."""
    return [dedup_form(text) for text in texts]


def encode(forms: list[str]) -> list[bytes]:
    """UTF-8 bytes of each form (a lone surrogate, which JSON can carry, is kept as its code unit
    rather than failing the shard)."""
    return [form.encode("utf-8", "surrogatepass") for form in forms]


def exact_keys(encoded: list[bytes]) -> np.ndarray:
    """64 bits of ``winnow.datasets.hashing.hash_text`` for each text already put through
    :func:`dedup_form` and :func:`encode`: two texts that differ only in case, spacing or Unicode
    form share it (the first 8 bytes of the 128-bit BLAKE2b digest, big-endian)."""
    blake2b = hashlib.blake2b
    return np.fromiter((int.from_bytes(blake2b(data, digest_size=16).digest()[:8], "big") for data in encoded),
                       np.uint64, len(encoded))


def word_hashes(encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``pandas.util.hash_array`` of the ``\\w+`` words of each UTF-8 text, all texts concatenated,
    and the number of words per text."""
    n = len(encoded)
    joined = b" ".join(encoded).translate(_WORD_BYTES)
    pieces = joined.split()
    if not pieces:
        return np.zeros(0, np.uint64), np.zeros(n, np.int64)
    buffer = np.frombuffer(joined, np.uint8)
    filled = buffer != _SPACE
    starts = np.flatnonzero(filled & ~np.concatenate([[False], filled[:-1]]))
    text_ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, n) + 1)  # each text, then its separator
    text_of_piece = np.searchsorted(text_ends, starts, side="right")
    lengths = np.bincount(text_of_piece, minlength=n)
    high = buffer >= 0x80
    if high.any():  # pieces with non-ASCII characters: some of them may not be word characters
        words: list = []
        done = 0
        for k in np.flatnonzero(np.add.reduceat(high, starts)).tolist():
            found = WORD.findall(pieces[k].decode("utf-8", "surrogatepass"))
            words.extend(pieces[done:k])
            words.extend(found)
            lengths[text_of_piece[k]] += len(found) - 1
            done = k + 1
        words.extend(pieces[done:])
        pieces = words
    if not pieces:
        return np.zeros(0, np.uint64), lengths
    return pd.util.hash_array(np.fromiter(pieces, object, len(pieces)), categorize=False), lengths


def shingle_hashes(texts: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word ``size``-grams of each text, all texts concatenated, and the count per
    text. Words are ``\\w+`` runs (punctuation is ignored); a text with fewer words than ``size``
    has one shingle of all its words; a text with no word has none."""
    return shingles_of_words(*word_hashes(encode(texts)), size)


def shingles_of_words(hashes: np.ndarray, lengths: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`shingle_hashes` from the word hashes and word counts of :func:`word_hashes`."""
    counts = np.where(lengths >= size, lengths - size + 1, np.minimum(lengths, 1))
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.uint32), counts
    ends = np.cumsum(lengths)
    first_word = np.repeat(ends - lengths, counts)
    position = first_word + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
    padded = np.concatenate([hashes, np.zeros(size, np.uint64)])
    combined = padded[position]
    short = bool(((lengths > 0) & (lengths < size)).any())
    word_ends = np.repeat(ends, counts) if short else None
    for k in range(1, size):
        following = padded[position + k]
        if short:  # a shingle never reaches into the next text
            following = np.where(position + k < word_ends, following, np.uint64(0))
        combined = combined * _SHINGLE_MIX + following
    return (combined ^ (combined >> np.uint64(32))).astype(np.uint32), counts


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> np.ndarray:
    """datasketch's ``affine32`` permutation parameters ``(a, b)`` for ``num_perm`` and ``seed``."""
    return MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations


def signatures(shingles: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures, ``(len(counts), num_perm)`` uint32: row ``i`` equals
    ``MinHash(num_perm, seed, scheme="affine32")`` updated with text ``i``'s shingle hashes. A text
    with no shingle gets the empty signature (all values at the maximum)."""
    a, b = permutations(num_perm, seed)
    a, b = a[:, None], b[:, None]
    out = np.full((num_perm, len(counts)), np.iinfo(np.uint32).max, np.uint32)
    nonempty = np.flatnonzero(counts > 0)
    offsets = np.concatenate([[0], np.cumsum(counts[nonempty])])
    mixed = _fmix(shingles.astype(np.uint32), 32)
    block = np.empty((num_perm, min(_CHUNK_SHINGLES, len(mixed))), np.uint32)
    for start in range(0, len(mixed), _CHUNK_SHINGLES):
        stop = min(start + _CHUNK_SHINGLES, len(mixed))
        values = block[:, : stop - start]
        np.multiply(a, mixed[None, start:stop], out=values)
        np.add(values, b, out=values)
        first = int(np.searchsorted(offsets, start, side="right")) - 1  # the text holding shingle `start`
        last = int(np.searchsorted(offsets, stop, side="left"))  # texts starting before `stop`
        segments = np.maximum(offsets[first:last], start) - start
        columns = nonempty[first:last]
        minima = np.minimum.reduceat(values, segments, axis=1)
        out[:, columns] = np.minimum(out[:, columns], minima)  # a text may span two blocks
    return np.ascontiguousarray(out.T)


@lru_cache(maxsize=8)
def _band_mix(rows: int) -> np.ndarray:
    return (np.random.default_rng(rows).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1))


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 32-bit key per band, ``(n, bands)``: two documents share a band's key when the band's
    ``rows`` signature values are equal (and, rarely, by collision; candidates are verified)."""
    mix = _band_mix(rows)
    grouped = sigs[:, : bands * rows].reshape(len(sigs), bands, rows)
    h = grouped[:, :, 0].astype(np.uint64) * mix[0]
    for row in range(1, rows):  # a loop over the few rows: far faster than a sum over a short last axis
        h += grouped[:, :, row].astype(np.uint64) * mix[row]
    return (h ^ (h >> np.uint64(32))).astype(np.uint32)


@lru_cache(maxsize=8)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's ``MinHashLSH`` choice of (bands, rows) for a Jaccard threshold."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r
