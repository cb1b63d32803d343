"""Pieces every dashboard page shares: the store, the chosen run, item views and the decision form.

Everything reads and writes through :class:`winnow.store.Store`, which opens the DuckDB file per
call (read-only for reads) and closes it, so a dashboard left open never blocks an audit.
"""

from __future__ import annotations

import difflib
import getpass
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageOps

from winnow.datasets import read_table
from winnow.errors import WinnowError
from winnow.store import Store

CACHE_TTL_S = 5
LOCK_TIMEOUT_S = 10.0
THUMBNAIL_PX = 160
SNIPPET_CHARS = 160
DECISION_LABELS = {"confirmed": "confirm", "dismissed": "dismiss", "relabel": "relabel", "keep": "keep"}
SUGGESTED = "each item's suggested label"
DUPLICATE_TYPES = ("exact_duplicate", "near_duplicate")


def db_path() -> str:
    """The database this dashboard shows: ``$WINNOW_DB``, else ``./winnow.duckdb``."""
    return str(Store().path)


def store() -> Store:
    """A store that waits at most :data:`LOCK_TIMEOUT_S` for a writing audit."""
    return Store(db_path(), lock_timeout=LOCK_TIMEOUT_S)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_runs(db: str) -> pd.DataFrame:
    """Runs, newest first, with ``items`` and ``flagged`` totals taken from their counts JSON."""
    runs = Store(db, lock_timeout=LOCK_TIMEOUT_S).list_runs()
    counts = [json.loads(c) if isinstance(c, str) else {} for c in runs["counts"]]
    runs["items"] = [c.get("items") for c in counts]
    runs["flagged"] = [sum((c.get("flagged") or {}).values()) for c in counts]
    return runs


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_counts(db: str, run_id: str) -> pd.DataFrame:
    """Per issue type of one run: items scored and flagged."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).issue_counts(run_id)


@st.cache_data(show_spinner=False, max_entries=4)
def load_table(source: str) -> pd.DataFrame | None:
    """The original rows of a tabular run (for showing rows next to their findings), or ``None``."""
    try:
        return read_table(Path(source))
    except (OSError, ValueError, WinnowError):
        return None


MAX_VECTORS = 200_000
"""Runs with more embedded items than this are not loaded into the app (about 1 GB at 1280-d)."""


@st.cache_resource(show_spinner="Loading the run's embeddings…", max_entries=1)
def run_vectors(db: str, run_id: str) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The run's embedded items and their unit-normalised vectors (row-aligned), or ``None`` when
    the run has no cached vectors or more than :data:`MAX_VECTORS` items."""
    from winnow.stages import load_vectors  # pulls in the detectors (1–2 s): only pages that need vectors pay

    store = Store(db, lock_timeout=LOCK_TIMEOUT_S)
    model_id = store.stages(run_id).get("embed", {}).get("model_id")
    if not model_id:
        return None
    items = store.load_items(run_id)
    if len(items) > MAX_VECTORS:
        return None
    embedded, vectors = load_vectors(store, items, model_id)
    if embedded.empty:
        return None
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return embedded, vectors / np.where(norms == 0, 1, norms)


# -- the chosen run -------------------------------------------------------------------------------


def _remember_run() -> None:
    st.query_params["run"] = st.session_state["run"]


def run_picker(runs: pd.DataFrame) -> str:
    """The sidebar's run select box. The choice lives in ``st.session_state["run"]`` and the ``run``
    query parameter, so every page (and a shared link) shows the same run."""
    ids = list(runs["run_id"])
    if st.session_state.get("run") not in ids:
        wanted = st.query_params.get("run")
        st.session_state["run"] = wanted if wanted in ids else ids[0]
    labels = {r.run_id: f"{r.dataset} · {r.modality or '?'} · {r.run_id}" for r in runs.itertuples()}
    st.sidebar.selectbox("Run", ids, format_func=labels.__getitem__, key="run", on_change=_remember_run)
    st.query_params["run"] = st.session_state["run"]
    return st.session_state["run"]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_run(db: str, run_id: str) -> dict[str, Any]:
    """One run's record."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).get_run(run_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_facets(db: str, run_id: str, issue_type: str) -> dict[str, Any]:
    """Labels and score range of one queue (see ``Store.queue_facets``)."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).queue_facets(run_id, issue_type)


def current_run() -> dict[str, Any] | None:
    """The chosen run's record, or ``None`` (with a message) when the database has none."""
    run_id = st.session_state.get("run")
    if not run_id:
        st.info(f"{db_path()} has no runs yet; run `winnow audit SOURCE --db {db_path()}` first.")
        return None
    return load_run(db_path(), run_id)


def reviewer() -> str | None:
    """The reviewer name typed in the sidebar."""
    return (st.session_state.get("reviewer") or "").strip() or None


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


# -- showing items --------------------------------------------------------------------------------


def source_root(run: dict[str, Any]) -> Path:
    """The folder a run's files must lie in: the source folder, or a manifest's folder."""
    root = Path(run["source"])
    return root.parent if root.suffix else root


def safe_uri(uri: str | None, run: dict[str, Any]) -> Path | None:
    """``uri`` as a path when it lies inside the run's source root, else ``None`` (no traversal)."""
    if not uri:
        return None
    try:
        path = Path(uri).resolve()
        root = source_root(run).resolve()
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(root) and path.is_file() else None


def open_image(uri: str | None, run: dict[str, Any]) -> Image.Image | None:
    """The image at ``uri`` as RGB, or ``None`` if it is outside the source root or unreadable."""
    path = safe_uri(uri, run)
    if path is None:
        return None
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def fit(image: Image.Image, px: int = THUMBNAIL_PX) -> Image.Image:
    """``image`` scaled to fit a ``px`` square (pixelated when enlarged, so small images stay sharp)."""
    method = Image.Resampling.NEAREST if max(image.size) < px else Image.Resampling.LANCZOS
    return ImageOps.contain(image, (px, px), method=method)


def same_scale(images: list[Image.Image | None], px: int) -> list[Image.Image | None]:
    """The images scaled by one common factor so the largest fits ``px``: sizes stay comparable."""
    present = [i for i in images if i is not None]
    if not present:
        return images
    factor = px / max(max(i.size) for i in present)
    method = Image.Resampling.NEAREST if factor > 1 else Image.Resampling.LANCZOS
    return [None if i is None else i.resize((max(1, round(i.width * factor)), max(1, round(i.height * factor))), method) for i in images]


def snippet(text: Any, chars: int = SNIPPET_CHARS) -> str | None:
    """``text`` cut to ``chars`` characters."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    text = str(text)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def table_rows(run: dict[str, Any], items: pd.DataFrame) -> pd.DataFrame | None:
    """The original table rows of tabular ``items`` (row-aligned, indexed by item_id), or ``None``."""
    if run["modality"] != "tabular" or items.empty:
        return None
    table = load_table(run["source"])
    if table is None:
        return None
    rows = [json.loads(m or "{}").get("row") for m in items["metadata"]]
    if any(r is None or r >= len(table) for r in rows):
        return None
    frame = table.iloc[rows].reset_index(drop=True)
    frame.index = list(items["item_id"])
    return frame


def show_item(run: dict[str, Any], item: pd.Series | dict | None, *, px: int = 240, image: Image.Image | None = None) -> None:
    """One item as it is: the image (fitted to ``px``, or ``image`` as given), the text, or the table row."""
    if item is None:
        st.caption("(item not in this run)")
        return
    if item.get("error"):
        st.error(str(item["error"]), icon="⚠️")
    if run["modality"] == "image":
        if image is None:
            image = open_image(item.get("uri"), run)
            image = None if image is None else fit(image, px)
        if image is None:
            st.caption("cannot display (file missing, unreadable or outside the source folder)")
        else:
            st.image(image)
    elif run["modality"] == "text":
        st.text(item.get("text") or "")
    else:
        rows = table_rows(run, pd.DataFrame([dict(item)]))
        if rows is not None:
            st.dataframe(rows, hide_index=True)
        else:
            st.json(item.get("metadata") or "{}")


def text_diff_html(a: str, b: str) -> str:
    """An inline word diff of two texts: removed words struck through in red, added ones in green."""
    left, right = (a or "").split(), (b or "").split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(html.escape(" ".join(left[i1:i2])))
            continue
        if i2 > i1:
            parts.append(f"<del style='background:#fdd;color:#900'>{html.escape(' '.join(left[i1:i2]))}</del>")
        if j2 > j1:
            parts.append(f"<ins style='background:#dfd;color:#060;text-decoration:none'>{html.escape(' '.join(right[j1:j2]))}</ins>")
    return " ".join(parts)


# -- paging and the decision form -----------------------------------------------------------------


def page_offset(key: str, page_size: int, signature: tuple) -> int:
    """The offset of the page the reviewer is on; back to page 1 when the filters (``signature``) change."""
    if st.session_state.get(f"{key}_signature") != signature:
        st.session_state[f"{key}_signature"] = signature
        st.session_state[key] = 1
    return (int(st.session_state.get(key, 1)) - 1) * page_size


def _step_page(key: str, step: int, pages: int) -> None:
    st.session_state[key] = min(max(int(st.session_state.get(key, 1)) + step, 1), pages)


def pager(slot: Any, total: int, page_size: int, key: str) -> None:
    """The page-number input with previous / next buttons (PageUp / PageDown), in ``slot`` (a
    container placed above the list); a page past the end (the list shrank) goes back to the last page."""
    pages = max(1, -(-total // page_size))
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages
        st.rerun()
    number, back, forward, _ = slot.columns([2, 1.6, 1.6, 2.8], vertical_alignment="bottom")
    number.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=key)
    back.button("Previous", key=f"{key}_back", shortcut="PageUp", on_click=_step_page, args=(key, -1, pages),
                disabled=st.session_state.get(key, 1) <= 1, width="stretch")
    forward.button("Next", key=f"{key}_next", shortcut="PageDown", on_click=_step_page, args=(key, 1, pages),
                   disabled=st.session_state.get(key, 1) >= pages, width="stretch")


def selection_nonce() -> int:
    """A counter in widget keys: bumping it clears every selection after a decision is stored."""
    return st.session_state.setdefault("selection_nonce", 0)


def decision_text(row: Any) -> str:
    """The current decision of a queue row in a few words, or an empty string."""
    decision = getattr(row, "decision", None) if not isinstance(row, dict) else row.get("decision")
    if decision is None or (isinstance(decision, float) and pd.isna(decision)):
        return ""
    get = (lambda k: row.get(k)) if isinstance(row, dict) else (lambda k: getattr(row, k, None))
    text = str(decision)
    if decision == "relabel" and get("new_label"):
        text += f" → {get('new_label')}"
    if get("reviewer"):
        text += f" ({get('reviewer')})"
    return text


DECISION_KEYS = {"confirmed": "Y", "dismissed": "N", "relabel": "L", "keep": "K"}
"""The keyboard shortcut of each decision button (``C`` and ``R`` are reserved by Streamlit)."""

KEYBOARD_HELP = (
    "**Keyboard:** `Tab` / `Shift+Tab` move between items and `Space` ticks one; `A` selects every item on the page, "
    "`D` clears the selection; `Y` confirm · `N` dismiss · `L` relabel (to the label in the form) · `K` keep, "
    "for the selection; `PageDown` / `PageUp` next and previous page. Shortcuts act when no text box has the focus."
)


def _record(run_id: str, issue_type: str, key: str, suggested: dict[str, str], decision: str) -> None:
    """Form callback: store ``decision`` for the selected items, then clear the selection."""
    state = st.session_state
    ids = list(state.get(f"{key}_ids") or [])
    label = state.get(f"{key}_label")
    note = (state.get(f"{key}_note") or "").strip() or None
    try:
        if decision == "relabel" and label == SUGGESTED:
            groups: dict[str, list[str]] = {}
            for item_id in ids:
                groups.setdefault(suggested.get(item_id) or "", []).append(item_id)
            if "" in groups:
                raise WinnowError(f"{len(groups[''])} selected item(s) have no suggested label; pick a label.")
            stored = sum(store().record_decisions(run_id, g, issue_type, decision, new_label=lbl, note=note, reviewer=reviewer())
                         for lbl, g in groups.items())
        else:
            new_label = label if decision == "relabel" and label != "—" else None
            stored = store().record_decisions(run_id, ids, issue_type, decision, new_label=new_label, note=note, reviewer=reviewer())
    except WinnowError as exc:
        state["flash"] = ("error", str(exc))
        return
    state["flash"] = ("success", f"Recorded {decision} for {stored} {issue_type} item(s).")
    clear_selection()


def clear_selection() -> None:
    """Forget every tick (a new nonce gives every tick box and table selection a fresh key)."""
    st.session_state["selection_nonce"] = st.session_state.get("selection_nonce", 0) + 1
    st.session_state.pop("page_selected", None)


def _select_page(ids: list[str], keys: list[str]) -> None:
    for key in keys:
        st.session_state[key] = True
    st.session_state["page_selected"] = list(ids)


def page_selection_buttons(ids: list[str], keys: list[str] | None = None) -> list[str]:
    """"Select page" (A) and "Clear" (D) buttons; returns the ids selected by A (until cleared or decided).

    ``keys`` are the tick boxes of the page's items, ticked by A; a table without tick boxes uses
    the returned ids instead."""
    left, right, _ = st.columns([1, 1, 6])
    left.button("Select page", key="select_page", shortcut="A", on_click=_select_page, args=(ids, keys or []), width="stretch")
    right.button("Clear", key="clear_selection", shortcut="D", on_click=clear_selection, width="stretch")
    chosen = st.session_state.get("page_selected") or []
    return [i for i in ids if i in chosen]


def show_flash() -> None:
    """The message the last decision left, shown once."""
    flash = st.session_state.pop("flash", None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(flash[1])


def decision_form(run: dict[str, Any], issue_type: str, selected: list[str], *, labels: list[str],
                  suggested: dict[str, str] | None = None, key: str = "decide") -> None:
    """Confirm / dismiss / relabel / keep for the selected items, one button (and key) each,
    stored with the sidebar's reviewer."""
    suggested = suggested or {}
    st.session_state[f"{key}_ids"] = list(selected)
    with st.form(key, border=True):
        st.markdown(f"**Decision for {len(selected)} selected {issue_type} item(s)**"
                    + ("" if selected else " — tick items above first"))
        left, right = st.columns(2)
        options = ([SUGGESTED] if suggested else []) + labels
        left.selectbox("New label (relabel only)", options or ["—"], key=f"{key}_label", accept_new_options=True)
        right.text_input("Note", key=f"{key}_note")
        helps = {"confirmed": "the issue is real: the item leaves the cleaned set", "dismissed": "not an issue: the item stays",
                 "relabel": "keep the item with the new label above", "keep": "a real issue, but keep the item"}
        for column, (decision, verb) in zip(st.columns(len(DECISION_LABELS)), DECISION_LABELS.items()):
            column.form_submit_button(f"{verb.capitalize()} {len(selected)}", key=f"{key}_{decision}", shortcut=DECISION_KEYS[decision],
                                      type="primary" if decision == "confirmed" else "secondary", disabled=not selected,
                                      help=helps[decision], on_click=_record, args=(run["run_id"], issue_type, key, suggested, decision),
                                      width="stretch")
    st.caption(KEYBOARD_HELP)
    if not reviewer():
        st.caption("No reviewer name in the sidebar: decisions are stored without one.")
