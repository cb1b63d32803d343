"""Exports: findings, duplicate pairs, and the cleaned dataset, as CSV, Parquet or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from winnow.datasets import read_table
from winnow.errors import ConfigError
from winnow.store import Store

WHATS = ("findings", "pairs", "clean")
FORMATS = ("csv", "parquet", "jsonl")


def format_for(out: Path, fmt: str | None) -> str:
    """The format asked for, else the one the file extension names."""
    if fmt:
        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
        return fmt
    guessed = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}.get(out.suffix.lower())
    if guessed is None:
        raise ConfigError(f"cannot tell the format of {out.name}; add --format {'/'.join(FORMATS)} or use a .csv/.parquet/.jsonl name.")
    return guessed


def write_frame(frame: pd.DataFrame, out: Path, fmt: str) -> None:
    """Write ``frame`` to ``out`` in ``fmt``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_json(out, orient="records", lines=True, force_ascii=False, date_format="iso")


def clean_dataset(store: Store, run_id: str) -> pd.DataFrame:
    """The dataset without the items removed by findings and decisions (see ``Store.clean_items``).

    Tables come back as their original rows (relabels applied to the label column); images and
    texts as a manifest with ``item_id``, ``uri`` or ``text``, and ``label``.
    """
    run = store.get_run(run_id)
    kept = store.clean_items(run_id)
    if run["modality"] != "tabular":
        columns = ["item_id", "uri" if run["modality"] == "image" else "text", "label"]
        return kept[columns].reset_index(drop=True)
    config = run["config"]
    original = read_table(Path(run["source"]))
    rows = [json.loads(m)["row"] for m in kept["metadata"]]
    clean = original.iloc[rows].reset_index(drop=True)
    if config.get("label_col"):
        clean[config["label_col"]] = kept["label"].to_numpy()
    return clean


def export(store: Store, what: str, out: Path, *, run_id: str | None = None, fmt: str | None = None) -> tuple[str, int]:
    """Write one export of a run (default: the newest) and return ``(run_id, rows written)``."""
    if what not in WHATS:
        raise ConfigError(f"--what must be one of {', '.join(WHATS)}, not {what!r}.")
    run_id = store.resolve_run(run_id)
    fmt = format_for(out, fmt)
    frame = {"findings": store.findings, "pairs": store.pairs, "clean": lambda r: clean_dataset(store, r)}[what](run_id)
    write_frame(frame, out, fmt)
    return run_id, len(frame)
