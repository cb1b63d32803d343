"""In-memory sources for the Python API (pandas and polars DataFrames, Arrow tables, lists of texts
or PIL images, Hugging Face datasets).

They are written once to files beside the database, so a notebook audit runs through exactly the
same ingest → flow path as the CLI, can be resumed and exported, and shows up in the dashboard.
The written file is named after its content, so auditing the same object twice writes nothing new.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from winnow.errors import SourceError

LABEL_COLUMN = "label"


@dataclass
class Materialized:
    """A source as a path the flow can ingest, the ingest options it needs, and the user's object."""

    path: Path
    kind: str
    original: Any
    options: dict[str, Any] = field(default_factory=dict)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=10).hexdigest()


def _write_once(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def save_array(array: np.ndarray, folder: Path, prefix: str) -> Path:
    """Save ``array`` as ``.npy`` under ``folder``, named after its content."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    return _write_once(folder, f"{prefix}-{_digest(data)}.npy", data)


def _frame_file(frame: pd.DataFrame, folder: Path) -> Path:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    return _write_once(folder, f"frame-{_digest(data)}.parquet", data)


def _with_labels(frame: pd.DataFrame, labels: Sequence[Any] | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    if labels is None:
        return frame, {}
    if len(labels) != len(frame):
        raise SourceError(f"labels has {len(labels)} values for {len(frame)} items; pass one label per item.")
    if LABEL_COLUMN in frame.columns:
        raise SourceError(f"the data already has a {LABEL_COLUMN!r} column; pass label_col={LABEL_COLUMN!r} instead of labels=.")
    return frame.assign(**{LABEL_COLUMN: [None if pd.isna(v) else str(v) for v in labels]}), {"label_col": LABEL_COLUMN}


def _images_file(images: Sequence[Any], labels: Sequence[Any] | None, folder: Path) -> tuple[Path, dict[str, Any]]:
    encoded = []
    for i, image in enumerate(images):
        if not hasattr(image, "save"):
            raise SourceError(f"item {i} is a {type(image).__name__}, not a PIL image; pass a list of PIL images or of strings.")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    batch = folder / f"images-{_digest(b''.join(hashlib.blake2b(e, digest_size=16).digest() for e in encoded))}"
    paths = [str(_write_once(batch, f"{i:06d}.png", data)) for i, data in enumerate(encoded)]
    frame, options = _with_labels(pd.DataFrame({"path": paths}), labels)
    return _frame_file(frame, folder), {**options, "path_col": "path", "modality": "image"}


def _hugging_face(dataset: Any, labels: Sequence[Any] | None, folder: Path) -> tuple[Path, dict[str, Any]]:
    import datasets

    image_columns = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
    class_columns = {name: feature for name, feature in dataset.features.items() if isinstance(feature, datasets.ClassLabel)}
    if labels is None and len(class_columns) == 1:
        name, feature = next(iter(class_columns.items()))
        labels = [feature.int2str(v) for v in dataset[name]]
    if image_columns:
        return _images_file(dataset[image_columns[0]], labels, folder)
    frame = dataset.to_pandas()
    frame, options = _with_labels(frame.drop(columns=list(class_columns)) if labels is not None else frame, labels)
    return _frame_file(frame, folder), options


def materialize(source: Any, *, folder: Path, labels: Sequence[Any] | None = None) -> Materialized:
    """Turn ``source`` into a file winnow can ingest (paths are used as they are)."""
    if isinstance(source, (str, Path)):
        if labels is not None:
            raise SourceError("labels= works with in-memory data; for files, name the label column with label_col=.")
        return Materialized(Path(source), "path", source)
    if isinstance(source, pd.DataFrame):
        frame, options = _with_labels(source.reset_index(drop=True), labels)
        return Materialized(_frame_file(frame, folder), "pandas", source, options)
    if type(source).__module__.startswith("polars"):
        frame, options = _with_labels(source.to_pandas(), labels)
        return Materialized(_frame_file(frame, folder), "polars", source, options)
    if type(source).__module__.startswith("pyarrow"):
        frame, options = _with_labels(source.to_pandas(), labels)
        return Materialized(_frame_file(frame, folder), "arrow", source, options)
    if type(source).__module__.startswith("datasets"):
        path, options = _hugging_face(source, labels, folder)
        return Materialized(path, "hf", source, options)
    if isinstance(source, (list, tuple)) and source:
        if all(isinstance(x, str) for x in source):
            frame, options = _with_labels(pd.DataFrame({"text": list(source)}), labels)
            return Materialized(_frame_file(frame, folder), "texts", source, {**options, "text_col": "text", "modality": "text"})
        path, options = _images_file(source, labels, folder)
        return Materialized(path, "images", source, options)
    raise SourceError(
        f"cannot audit a {type(source).__name__}; pass a path, a pandas or polars DataFrame, a pyarrow Table, a Hugging Face "
        "Dataset, or a non-empty list of strings or PIL images."
    )


def subset(original: Any, kind: str, positions: np.ndarray) -> Any:
    """The rows of the user's object at ``positions``, in the object's own type."""
    if kind == "pandas":
        return original.iloc[positions]
    if kind == "polars":
        return original[positions]
    if kind == "arrow":
        return original.take(positions)
    if kind == "hf":
        return original.select(positions.tolist())
    if kind in ("texts", "images"):
        return type(original)(original[i] for i in positions)
    raise ValueError(f"no in-memory subset for source kind {kind!r}")
