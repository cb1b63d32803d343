"""The result of an audit for notebooks and scripts: findings, pairs, the cleaned data and exports.

A :class:`Report` is a view over one run in the DuckDB store; it reads through :class:`Store`, so
what a notebook shows is what the dashboard and ``winnow export`` show.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.findings import ISSUE_TYPES
from winnow.sources import Materialized, subset
from winnow.store import Store

THUMBNAIL_PX = 64


class Report:
    """One audit run: ``findings``, ``pairs``, ``summary()``, ``top()``, ``clean()`` and exports."""

    def __init__(self, store: Store, run_id: str, info: dict[str, Any], data: Materialized) -> None:
        self.store = store
        self.run_id = run_id
        self.info = info
        self._data = data

    @property
    def findings(self) -> pd.DataFrame:
        """Every finding of the run (the contract columns), most likely issues first per type."""
        return self.store.findings(self.run_id)

    @property
    def pairs(self) -> pd.DataFrame:
        """Duplicate pairs: ``item_a, item_b, similarity, method, run_id``."""
        return self.store.pairs(self.run_id)

    @property
    def items(self) -> pd.DataFrame:
        """The audited items (ids, uri or text, label, content hash, read errors)."""
        return self.store.load_items(self.run_id)

    def summary(self) -> pd.DataFrame:
        """Per issue type: items scored and items flagged."""
        counts = self.store.issue_counts(self.run_id).set_index("issue_type")
        order = [t for t in ISSUE_TYPES if t in counts.index]
        return counts.loc[order].reset_index()

    def top(self, issue_type: str, n: int = 10, *, flagged_only: bool = False) -> pd.DataFrame:
        """The ``n`` items most likely to have ``issue_type``, with their uri or text and label."""
        found = self.store.findings(self.run_id, issue_type=issue_type, flagged_only=flagged_only).head(n)
        items = self.items.set_index("item_id")[["uri", "text", "label"]]
        return found.join(items, on="item_id")[["item_id", "score", "flagged", "reason", "label", "uri", "text", "related_item_id", "suggested_label"]]

    def clean(self) -> Any:
        """The data without the items removed by flagged findings or confirmed decisions.

        In-memory sources come back in their own type (DataFrame, Arrow table, Hugging Face
        dataset, list); files come back as the cleaned table or manifest (see ``winnow export``).
        """
        if self._data.kind == "path":
            from winnow.export import clean_dataset

            return clean_dataset(self.store, self.run_id)
        kept = self.store.clean_items(self.run_id)["ordinal"].to_numpy(dtype=np.int64)
        return subset(self._data.original, self._data.kind, kept)

    def to_cleanlab(self) -> pd.DataFrame:
        """A cleanlab-style issue frame: one row per item, ``is_<type>_issue`` and ``<type>_score``.

        As in cleanlab, scores are in [0, 1] with lower = worse: ``1 - percentile rank`` of winnow's
        score within the run and issue type.
        """
        findings = self.findings
        frame = pd.DataFrame(index=pd.Index(self.items["item_id"], name="item_id"))
        for issue_type, group in findings.groupby("issue_type", sort=False):
            ranks = group["score"].rank(pct=True, method="average")
            frame[f"is_{issue_type}_issue"] = group.set_index("item_id")["flagged"]
            frame[f"{issue_type}_score"] = pd.Series((1.0 - ranks).to_numpy(), index=group["item_id"])
        return frame.reset_index()

    def filter_list(self, path: str | Path | None = None) -> pd.DataFrame:
        """``item_id, uri, text, remove, issue_types, reasons`` for every item; written to Parquet at
        ``path`` when given (readable by DuckDB, Spark or datatrove)."""
        kept = set(self.store.clean_items(self.run_id)["item_id"])
        flagged = self.findings[self.findings["flagged"]]
        why = flagged.groupby("item_id").agg(issue_types=("issue_type", list), reasons=("reason", list))
        frame = self.items[["item_id", "uri", "text"]].join(why, on="item_id")
        frame["remove"] = ~frame["item_id"].isin(kept)
        for column in ("issue_types", "reasons"):
            frame[column] = frame[column].apply(lambda v: v if isinstance(v, list) else [])
        if path is not None:
            frame.to_parquet(path, index=False)
        return frame

    def to_fiftyone(self, path: str | Path) -> Path:
        """Write a JSON file for ``fiftyone.Dataset.from_dict(json.load(open(path)))``: image
        samples with a ``ground_truth`` classification, one tag per flagged issue type, the
        ``winnow_item_id`` and one ``winnow_<issue type>`` float score field per issue type.
        The file declares its ``media_type`` and ``sample_fields``, as ``from_dict`` does not add
        undeclared fields."""
        if self.info.get("modality") != "image":
            raise ValueError("FiftyOne export is for image runs; use filter_list() or to_cleanlab() for texts and tables.")
        scores = self.findings.pivot_table(index="item_id", columns="issue_type", values="score")
        tags = self.findings[self.findings["flagged"]].groupby("item_id")["issue_type"].apply(list)
        fields = {"winnow_item_id": "fiftyone.core.fields.StringField"}
        samples = []
        for row in self.items.itertuples():
            sample: dict[str, Any] = {"filepath": row.uri, "tags": tags.get(row.item_id, []), "winnow_item_id": row.item_id}
            if row.label is not None:
                sample["ground_truth"] = {"_cls": "Classification", "label": row.label}
                fields["ground_truth"] = "fiftyone.core.fields.EmbeddedDocumentField(fiftyone.core.labels.Classification)"
            if row.item_id in scores.index:
                sample.update({f"winnow_{t}": float(v) for t, v in scores.loc[row.item_id].items() if pd.notna(v)})
            samples.append(sample)
        fields.update({f"winnow_{t}": "fiftyone.core.fields.FloatField" for t in scores.columns})
        out = Path(path)
        document = {"name": f"winnow-{self.run_id}", "media_type": "image", "sample_fields": fields, "samples": samples}
        out.write_text(json.dumps(document, indent=1))
        return out

    def __repr__(self) -> str:
        flagged = ", ".join(f"{r.issue_type} {r.flagged}" for r in self.summary().itertuples() if r.flagged)
        return f"<winnow Report {self.run_id}: {self.info.get('items')} {self.info.get('modality')} items; flagged: {flagged or 'none'}>"

    def _repr_html_(self) -> str:
        """Counts per issue type and, per type, the top flagged items (thumbnails for images)."""
        parts = [f"<h4>winnow audit {html.escape(self.run_id)}</h4>", self.summary().to_html(index=False)]
        uris = self.items.set_index("item_id")["uri"]
        for issue_type in self.summary()["issue_type"]:
            top = self.top(issue_type, 6, flagged_only=True)
            if top.empty:
                continue
            cells = []
            for row in top.itertuples():
                picture = _thumbnail(uris.get(row.item_id)) if self.info.get("modality") == "image" else ""
                text = html.escape(str(row.text)[:120]) if isinstance(row.text, str) else ""
                cells.append(f"<td style='vertical-align:top;max-width:160px'>{picture}<br><b>{html.escape(str(row.item_id))}</b> "
                             f"{row.score:.2f}<br>{text}<br><small>{html.escape(str(row.reason))}</small></td>")
            parts.append(f"<p><b>{issue_type}</b></p><table><tr>{''.join(cells)}</tr></table>")
        return "\n".join(parts)


def _thumbnail(uri: str | None) -> str:
    """An inline PNG ``<img>`` of the file at ``uri``, or nothing if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(uri) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
    except Exception:
        return ""
    return f"<img src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'/>"
