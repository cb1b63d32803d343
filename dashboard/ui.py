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

from dashboard.evidence import highlighted_html
from winnow.datasets import read_table
from winnow.errors import WinnowError
from winnow.store import Store

LOCK_TIMEOUT_S = 10.0
THUMBNAIL_PX = 160
SNIPPET_CHARS = 160
FAILING_CELL = "background-color: #ffd6d6; color: #8a0000; font-weight: 600"
"""How a table cell that failed a check (or could not be read) is marked."""
DECISION_LABELS = {"confirmed": "confirm", "dismissed": "dismiss", "relabel": "relabel", "keep": "keep"}
SUGGESTED = "each item's suggested label"
DUPLICATE_TYPES = ("exact_duplicate", "near_duplicate")
KEEPING_DECISIONS = ("dismissed", "keep", "relabel")
"""Decisions that keep a flagged item in the cleaned set (as ``Store.clean_items`` reads them)."""


def db_path() -> str:
    """The database this dashboard shows: ``$WINNOW_DB``, else ``./winnow.duckdb``."""
    return str(Store().path)


def store() -> Store:
    """A store that waits at most :data:`LOCK_TIMEOUT_S` for a writing audit."""
    return Store(db_path(), lock_timeout=LOCK_TIMEOUT_S)


def load_runs(db: str) -> pd.DataFrame:
    """Runs, newest first, with their ``kind``, ``version`` (see ``Store.runs_with_versions``: one
    read per page view, so the list and every version are current) and the ``items`` and
    ``flagged`` totals from their counts JSON. The sidebar reads it once per page view and keeps it
    for the page (:func:`runs`)."""
    frame = Store(db, lock_timeout=LOCK_TIMEOUT_S).runs_with_versions()
    counts = [json.loads(c) if isinstance(c, str) else {} for c in frame["counts"]]
    frame["items"] = [c.get("items") for c in counts]
    frame["flagged"] = [sum((c.get("flagged") or {}).values()) for c in counts]
    st.session_state["runs_this_view"] = frame
    return frame


def runs() -> pd.DataFrame:
    """The runs the sidebar read for this page view (see :func:`load_runs`)."""
    return st.session_state["runs_this_view"]


@st.cache_data(show_spinner=False, max_entries=16)
def load_counts_by_run(db: str, versions: tuple[str, ...]) -> pd.DataFrame:
    """Scored and flagged counts per run and issue type (see ``Store.issue_counts_by_run``);
    ``versions`` (every run's) keys the cache."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).issue_counts_by_run()


# Loaders keyed by ``version`` (``Store.runs_with_versions``: the run's status and stages and its
# dataset's decisions) are shared by every session of the server until something they show
# changes, so a reviewer opening a new tab does not read the same 100k findings again.


@st.cache_data(show_spinner=False, max_entries=64)
def load_counts(db: str, run_id: str, version: str) -> pd.DataFrame:
    """Per issue type of one run: items scored and flagged."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).issue_counts(run_id)


@st.cache_data(show_spinner=False, max_entries=256)
def load_queue_page(db: str, run_id: str, issue_type: str, version: str, offset: int, **filters: Any) -> tuple[pd.DataFrame, int]:
    """One page of a queue and how many findings match (see ``Store.findings_page``)."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).findings_page(run_id, issue_type, offset=offset, **filters)


@st.cache_data(show_spinner=False, max_entries=16)
def load_decisions(db: str, run_id: str, version: str) -> pd.DataFrame:
    """The decisions that apply to a run (see ``Store.decisions_for``)."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).decisions_for(run_id)


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


@st.cache_data(show_spinner=False, max_entries=64)
def load_run(db: str, run_id: str, version: str) -> dict[str, Any]:
    """One run's record."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).get_run(run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def load_facets(db: str, run_id: str, issue_type: str, version: str) -> dict[str, Any]:
    """Labels and score range of one queue (see ``Store.queue_facets``)."""
    return Store(db, lock_timeout=LOCK_TIMEOUT_S).queue_facets(run_id, issue_type)


def current_run() -> dict[str, Any] | None:
    """The chosen run's record with its ``version`` (the key of the loaders above, read by the
    sidebar for this page view), or ``None`` (with a message) when the database has none."""
    run_id = st.session_state.get("run")
    if not run_id:
        st.info(f"{db_path()} has no runs yet; run `winnow audit SOURCE --db {db_path()}` first.")
        return None
    version = runs().set_index("run_id").at[run_id, "version"]
    return {**load_run(db_path(), run_id, version), "version": version}


def run_counts(run: dict[str, Any]) -> pd.DataFrame:
    """Items scored and flagged per issue type of ``run`` (a :func:`current_run` record)."""
    return load_counts(db_path(), run["run_id"], run["version"])


def facets(run: dict[str, Any], issue_type: str) -> dict[str, Any]:
    """Labels and score range of one queue of ``run``."""
    return load_facets(db_path(), run["run_id"], issue_type, run["version"])


def queue_page(run: dict[str, Any], issue_type: str, offset: int, **filters: Any) -> tuple[pd.DataFrame, int]:
    """One page of a queue of ``run`` and how many findings match."""
    return load_queue_page(db_path(), run["run_id"], issue_type, run["version"], offset, **filters)


@st.cache_data(show_spinner=False, max_entries=64)
def load_texts(db: str, run_id: str, version: str, item_ids: tuple[str, ...]) -> dict[str, str]:
    """``item_id → text`` of these items of a run (texts only)."""
    items = Store(db, lock_timeout=LOCK_TIMEOUT_S).get_items(run_id, list(item_ids))
    return {row.item_id: row.text for row in items.itertuples() if isinstance(row.text, str)}


def texts_of(run: dict[str, Any], item_ids: tuple[str, ...]) -> dict[str, str]:
    """``item_id → text`` of these items of ``run``."""
    return load_texts(db_path(), run["run_id"], run["version"], item_ids) if item_ids else {}


def run_decisions(run: dict[str, Any]) -> pd.DataFrame:
    """The decisions that apply to ``run``."""
    return load_decisions(db_path(), run["run_id"], run["version"])


def is_filter_run(run: dict[str, Any]) -> bool:
    """Whether ``run`` is a ``winnow filter`` run (its results are removals, not findings)."""
    return (run.get("config") or {}).get("command") == "filter"


def filter_run_notice(run: dict[str, Any]) -> bool:
    """On a page about findings: for a ``winnow filter`` run, say that its results are on the
    Removals page (with a link) and return ``True``; ``False`` for an audit."""
    if not is_filter_run(run):
        return False
    st.info(f"Run {run['run_id']} is a `winnow filter` run: its results are the documents it removed, not findings.")
    st.page_link("views/removals.py", label="Open its removals", icon=":material/delete_sweep:")
    return True


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


def show_item(run: dict[str, Any], item: pd.Series | dict | None, *, px: int = 240, image: Image.Image | None = None,
              spans: list | None = None, failing: set[str] | None = None) -> None:
    """One item as it is: the image (fitted to ``px``, or ``image`` as given), the text (with the
    evidence ``spans`` of :mod:`dashboard.evidence` highlighted), or the table row (with the
    ``failing`` columns marked)."""
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
        if spans:
            st.markdown(highlighted_html(item.get("text") or "", spans), unsafe_allow_html=True)
        else:
            st.text(item.get("text") or "")
    else:
        rows = table_rows(run, pd.DataFrame([dict(item)]))
        if rows is None:
            st.caption(f"(the row cannot be read back from `{run['source']}`)")
        elif failing:
            marks = pd.DataFrame([[FAILING_CELL if c in failing else "" for c in rows.columns]], index=rows.index, columns=rows.columns)
            st.dataframe(rows.style.apply(lambda _: marks, axis=None), hide_index=True)
            st.caption(f"Marked: {', '.join(sorted(failing))} (failed a check or could not be read).")
        else:
            st.dataframe(rows, hide_index=True)


def metadata_text(metadata: Any) -> str:
    """An item's metadata JSON as ``key value · key value`` (``row`` counted from 1, as people do)."""
    try:
        values = json.loads(metadata) if isinstance(metadata, str) else (metadata or {})
    except ValueError:
        return str(metadata)
    if not isinstance(values, dict):
        return str(values)
    return " · ".join(f"row {v + 1} of the table" if k == "row" and isinstance(v, int) else f"{k.replace('_', ' ')} {v}"
                      for k, v in values.items())


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
        if st.session_state.get(f"{key}_label") == SUGGESTED and not suggested:  # left from a queue with suggestions
            st.session_state[f"{key}_label"] = (options or ["—"])[0]
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
