"""Content hashes: the identity of an item's content, independent of its name or position.

The embedding cache and exact-duplicate detection are keyed by these, so two files with the same
bytes, two texts that differ only in case or spacing, or two rows with the same values share a hash.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Any, Mapping

_WHITESPACE = re.compile(r"\s+")


def hash_bytes(data: bytes) -> str:
    """Hex digest of raw bytes (128-bit BLAKE2b: fast, and collisions are not a concern here)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hash a file's bytes without loading it whole."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_text(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: the form two copies of a text share."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def hash_text(text: str) -> str:
    """Hash of :func:`normalize_text`."""
    return hash_bytes(normalize_text(text).encode("utf-8"))


def canonical_row(row: Mapping[str, Any]) -> str:
    """A row as JSON with sorted keys, missing values as null and integral floats as ints."""

    def canon(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            if math.isnan(value):
                return None
            if value.is_integer():
                return int(value)
            return float(repr(value))
        if hasattr(value, "item"):  # numpy scalars
            return canon(value.item())
        if isinstance(value, str):
            return value.strip()
        return value

    return json.dumps({str(k): canon(v) for k, v in row.items()}, sort_keys=True, default=str)


def hash_row(row: Mapping[str, Any]) -> str:
    """Hash of :func:`canonical_row`."""
    return hash_bytes(canonical_row(row).encode("utf-8"))
