"""Ingest: turn a source (image folder, manifest or table) into a :class:`Dataset`.

:func:`ingest` detects the layout and modality; every reader keeps unreadable items as items with
an ``error`` rather than dropping them or raising.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from winnow.datasets.columns import require_columns
from winnow.datasets.images import ingest_image_folder, ingest_image_manifest, is_image_path
from winnow.datasets.model import ITEM_COLUMNS, MODALITIES, Dataset
from winnow.datasets.tabular import ingest_table
from winnow.datasets.texts import ingest_texts
from winnow.errors import SourceError

__all__ = ["Dataset", "EncodingError", "ITEM_COLUMNS", "MODALITIES", "existing_source", "ingest", "read_table"]

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
PATH_COLUMN_NAMES = ("path", "image", "image_path", "file", "filepath", "filename", "uri")
TEXT_COLUMN_NAMES = ("text", "content", "document", "sentence", "review", "caption", "body")


class EncodingError(SourceError):
    """A CSV / TSV / JSON-lines file that is not valid UTF-8; the message says where and how to fix it."""


def read_table(path: Path, *, encoding_errors: str = "strict", literal: bool = False) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or JSON-lines file into a frame, with an actionable error.

    Text files are read as UTF-8 (a leading byte-order mark is allowed). With the default
    ``encoding_errors="strict"`` a file that is not valid UTF-8 raises :class:`EncodingError`;
    ``"replace"`` reads it with U+FFFD in place of the undecodable bytes. A CSV / TSV cell that reads
    ``NA``, ``null``, ``None``, ``nan``… is missing unless ``literal`` is set: then only an empty
    cell is (texts and ids are kept as written).
    """
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SourceError(
            f"{path} is neither a folder nor a supported file; use an image folder or a "
            f"{', '.join(sorted(TABLE_SUFFIXES))} file."
        )
    text = dict(encoding="utf-8-sig", encoding_errors=encoding_errors)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False, **text)
        sep = "\t" if kind == "tsv" else ","
        _refuse_duplicate_header(path, sep, text)
        missing = dict(keep_default_na=False, na_values=[""]) if literal else {}
        return pd.read_csv(path, sep=sep, low_memory=False, **text, **missing)
    except SourceError:
        raise
    except UnicodeError as exc:
        raise EncodingError(f"{path} is not valid UTF-8: {_utf8_problem(path)}. Re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}` when it is Latin-1) and audit that file.") from exc
    except Exception as exc:
        raise SourceError(f"cannot read {path} as {kind}: {exc}") from exc


def _refuse_duplicate_header(path: Path, sep: str, text: dict) -> None:
    """pandas renames a repeated CSV header (``x``, ``x.1``); refuse it instead of auditing renamed columns."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False, **text)
    names = [str(n) for n in header.iloc[0]] if len(header) else []
    dupes = sorted({n for n in names if n and names.count(n) > 1})  # blank names become "Unnamed: i"
    if dupes:
        raise SourceError(f"{path} has duplicated column names {dupes}; rename them so that each column has its own name, and retry.")


def _utf8_problem(path: Path) -> str:
    """Where a file stops being UTF-8: the first bad line and byte, and how many lines are bad."""
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "it is UTF-16 (it starts with a UTF-16 byte-order mark)"
        handle.seek(0)
        first, bad, total = None, 0, 0
        for number, line in enumerate(handle, 1):
            total = number
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad += 1
                first = first or (number, exc.start + 1, line[exc.start])
    if first is None:
        return "it has a byte sequence that is not UTF-8"
    line, column, byte = first
    return f"{bad} of {total} lines have bytes that are not UTF-8, the first at line {line}, byte {column} (0x{byte:02X})"


def _guess_column(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lowered = {str(c).lower(): c for c in frame.columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _looks_like_image_paths(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(200)
    return len(sample) > 0 and sum(is_image_path(v) for v in sample) >= 0.9 * len(sample)


def existing_source(source: str | Path) -> Path:
    """``source`` as an absolute path, or a :class:`SourceError` when nothing is there."""
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise SourceError(f"{path} does not exist; pass an image folder or a CSV/Parquet/JSONL file.")
    return path


def ingest(
    source: str | Path,
    *,
    modality: str | None = None,
    text_col: str | None = None,
    path_col: str | None = None,
    label_col: str | None = None,
    id_col: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Read ``source`` into a :class:`Dataset`, detecting modality unless ``modality`` is given.

    A folder is an image folder. A file is a manifest: it is text when ``text_col`` is given or a
    column named like ``text`` exists, images when ``path_col`` is given or a column named like
    ``path`` holds image file names, and tabular otherwise.
    """
    path = existing_source(source)
    if modality is not None and modality not in MODALITIES:
        raise SourceError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}.")
    name = name or path.stem
    if path.is_dir():
        if modality not in (None, "image"):
            raise SourceError(f"{path} is a folder, which winnow reads as images; drop --modality {modality}.")
        return ingest_image_folder(path, name)

    literal = modality == "text" or text_col is not None  # known to be texts: read cells as written
    try:
        frame, not_utf8 = read_table(path, literal=literal), None
    except EncodingError as exc:
        # Only texts are read past undecodable bytes: each becomes U+FFFD, which the text-quality check
        # reports per row as broken encoding. Other data (ids, numbers, paths) must not be guessed at.
        if modality not in (None, "text"):
            raise
        try:
            frame, not_utf8 = read_table(path, encoding_errors="replace", literal=literal), exc
        except SourceError:
            raise exc from None
    try:
        require_columns(frame, str(path), text_col=text_col, path_col=path_col, label_col=label_col, id_col=id_col)
    except SourceError:
        if not_utf8 is not None:
            raise not_utf8 from None  # a column name with broken bytes: the encoding is the problem
        raise
    if frame.empty:
        raise SourceError(f"{path} has no rows.")
    if modality is None:
        if text_col:
            modality = "text"
        elif path_col:
            modality = "image"
        else:
            guess_path = _guess_column(frame, PATH_COLUMN_NAMES)
            if guess_path is not None and _looks_like_image_paths(frame[guess_path]):
                modality, path_col = "image", guess_path
            elif _guess_column(frame, TEXT_COLUMN_NAMES) is not None:
                modality = "text"
            else:
                modality = "tabular"
    if not_utf8 is not None and modality != "text":
        raise not_utf8
    common = dict(label_col=label_col, id_col=id_col, source=str(path), name=name)
    if modality == "text":
        text_col = text_col or _guess_column(frame, TEXT_COLUMN_NAMES)
        if text_col is None:
            if not_utf8 is not None:
                raise not_utf8
            raise SourceError(f"{path} has no text column; name it with --text-col (columns: {', '.join(map(str, frame.columns))}).")
        if not literal and TABLE_SUFFIXES[path.suffix.lower()] in ("csv", "tsv"):  # a review that reads "None" is a text
            frame = read_table(path, encoding_errors="strict" if not_utf8 is None else "replace", literal=True)
        return ingest_texts(frame, text_col=text_col, **common)
    if modality == "image":
        path_col = path_col or _guess_column(frame, PATH_COLUMN_NAMES)
        if path_col is None:
            raise SourceError(f"{path} has no image path column; name it with --path-col (columns: {', '.join(map(str, frame.columns))}).")
        return ingest_image_manifest(frame, base=path.parent, path_col=path_col, **common)
    return ingest_table(frame, **common)
