"""Image sources: a folder of images (``root/<label>/<file>`` or flat) or a manifest of paths.

Ingest reads each file once to hash it and checks its header with Pillow; a file that is empty,
not an image, larger than Pillow's decompression-bomb limit, not a regular file (a named pipe, a
device, a symlink loop) or named with bytes that are not UTF-8 is kept as an item with an ``error``
(it becomes a ``corrupt`` finding). Full decoding happens in the embed stage, which reports
truncated files the same way.
"""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from winnow.datasets.hashing import hash_bytes
from winnow.datasets.columns import id_values, label_values
from winnow.datasets.model import Dataset, items_frame
from winnow.errors import SourceError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)


def check_pixel_limit(image: Image.Image) -> None:
    """Refuse an image over ``Image.MAX_IMAGE_PIXELS`` before it is decoded.

    Pillow itself only raises above twice that limit and merely warns between the limit and twice
    it; turning the warning into an error with ``warnings.catch_warnings`` is not thread-safe (the
    filters are process-global and decoding runs on worker threads), so the size is checked here.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise Image.DecompressionBombError(
            f"image size ({image.width}x{image.height} = {image.width * image.height} pixels) exceeds the limit of "
            f"{limit} pixels (PIL.Image.MAX_IMAGE_PIXELS); it could be a decompression bomb"
        )


def decode_image(path: str | Path) -> Image.Image:
    """Fully decode an image file as stored (mode and EXIF untouched); raises on truncated files and
    on images over Pillow's decompression-bomb limit (see :func:`check_pixel_limit`)."""
    with Image.open(path) as image:
        check_pixel_limit(image)
        image.load()
        return image.copy()  # keeps .info (and so the EXIF block), detached from the file


def is_image_path(path: str | Path) -> bool:
    """Whether a path has an image file extension."""
    return Path(str(path)).suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(root: Path) -> list[Path]:
    """Image files under ``root`` in a stable (sorted) order; symlink loops are not followed."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and is_image_path(f))
    return found


def inspect_image(path: Path) -> tuple[str | None, dict, str | None]:
    """Hash a file and read its image header: ``(content_hash, metadata, error)``.

    Only regular files are opened: a named pipe would block the reader forever and a device such as
    ``/dev/zero`` never ends, so either (or a symlink to one) is refused before it is read.
    """
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            return None, {}, f"not a regular file (a {_file_kind(mode)}); only image files can be audited, remove it or point at the real file"
        data = path.read_bytes()
    except OSError as exc:
        return None, {}, f"cannot read file: {exc.strerror or exc}"
    if not data:
        return hash_bytes(data), {"bytes": 0}, "file is empty (0 bytes)"
    content_hash = hash_bytes(data)
    meta: dict = {"bytes": len(data)}
    try:
        with Image.open(path) as image:
            meta.update(width=image.width, height=image.height, format=image.format, mode=image.mode)
            check_pixel_limit(image)
            image.verify()
    except Image.DecompressionBombError as exc:
        return content_hash, meta, f"refused as a decompression bomb: {exc}"
    except Exception as exc:  # Pillow raises many types for unreadable files
        return content_hash, meta, f"not a readable image: {exc}"
    return content_hash, meta, None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "named pipe"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def printable(name: str) -> str:
    """``name`` as valid UTF-8: bytes of a file name that were not UTF-8 (kept by Python as lone
    surrogates) are written as ``\\xNN`` escapes, so the name can be stored and shown."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _rows_for(paths: list[Path], item_ids: list[str], labels: list[str | None]) -> list[dict]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        inspected = list(pool.map(inspect_image, paths))
    rows = []
    for path, item_id, label, (content_hash, meta, error) in zip(paths, item_ids, labels, inspected):
        uri = str(path)
        if printable(uri) != uri:  # the store, exports and the dashboard need text, not raw bytes
            error = f"file name is not valid UTF-8 ({printable(item_id)!r}); rename the file (e.g. with convmv) and audit again"
            item_id, uri, label = printable(item_id), printable(uri), None if label is None else printable(label)
        rows.append(
            {
                "item_id": item_id,
                "modality": "image",
                "uri": uri,
                "text": None,
                "label": label,
                "content_hash": content_hash or hash_bytes(str(path).encode()),
                "metadata": json.dumps(meta, sort_keys=True),
                "error": error,
            }
        )
    return rows


def ingest_image_folder(root: Path, name: str) -> Dataset:
    """Ingest a folder; files inside a first-level sub-folder take its name as their label."""
    paths = list_image_files(root)
    if not paths:
        raise SourceError(
            f"no image files found under {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}). "
            "Point winnow at the folder that holds the images, or pass a manifest file."
        )
    rel = [p.relative_to(root).as_posix() for p in paths]
    labels = [r.split("/", 1)[0] if "/" in r else None for r in rel]
    items = items_frame(_rows_for(paths, rel, labels))
    return Dataset(name=name, source=str(root), modality="image", items=items)


def ingest_image_manifest(
    frame: pd.DataFrame, *, base: Path, path_col: str, label_col: str | None, id_col: str | None,
    source: str, name: str,
) -> Dataset:
    """Ingest a manifest whose ``path_col`` names image files (relative to the manifest's folder)."""
    raw_paths = frame[path_col]
    paths = [Path(str(p)) if Path(str(p)).is_absolute() else base / str(p) for p in raw_paths.fillna("")]
    ids = id_values(frame, id_col)
    labels = label_values(frame, label_col)
    rows = _rows_for(paths, ids, labels)
    for row, raw in zip(rows, raw_paths):
        if pd.isna(raw) or not str(raw).strip():
            row["error"] = f"empty value in path column {path_col!r}"
    return Dataset(name=name, source=source, modality="image", items=items_frame(rows))

