"""The multipage triage dashboard against real DuckDB files written through the Store API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from winnow.datasets.model import items_frame
from winnow.errors import WinnowError
from winnow.findings import make_findings
from winnow.store import Store

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def _pairs(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_a", "item_b", "similarity", "method"])


def _image_run(store: Store, folder: Path) -> str:
    """Three real PNGs (one an exact copy) and a broken file, audited by hand."""
    folder.mkdir()
    Image.new("RGB", (28, 28), (200, 30, 30)).save(folder / "red.png")
    Image.new("RGB", (28, 28), (30, 30, 200)).save(folder / "blue.png")
    (folder / "red_copy.png").write_bytes((folder / "red.png").read_bytes())
    (folder / "broken.png").write_text("not a png")
    ids = ["red.png", "blue.png", "red_copy.png", "broken.png"]
    items = items_frame(
        [{"item_id": i, "modality": "image", "uri": str(folder / i), "content_hash": i,
          "error": "not a readable image" if i == "broken.png" else None} for i in ids]
    )
    findings = pd.concat(
        [
            make_findings(ids, "exact_duplicate", [0.0, 0.0, 1.0, 0.0], [False, False, True, False],
                          [None, None, "byte-identical to red.png", None], [{}] * 4,
                          related_item_ids=[None, None, "red.png", None], group_ids=["exact:red.png", None, "exact:red.png", None]),
            make_findings(ids, "corrupt", [0.0, 0.0, 0.0, 1.0], [False, False, False, True],
                          [None, None, None, "not a readable image"], [{}] * 4),
        ],
        ignore_index=True,
    )
    run_id = store.create_run(dataset="shapes", source=str(folder), modality="image", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, _pairs([("red.png", "red_copy.png", 1.0, "sha256")]))
    store.finish_run(run_id, status="completed", counts={"items": 4, "flagged": {"exact_duplicate": 1, "corrupt": 1}})
    return run_id


def _text_run(store: Store, dataset: str = "reviews") -> str:
    """Three short texts, one near copy of another, and one ('b') labelled against its neighbours.
    Their vectors are cached, so the label-errors page can find neighbours."""
    texts = {"a": "A gorgeous, moving portrait of a family.", "b": "A tedious mess.", "c": "A gorgeous moving portrait of a family!"}
    labels = {"a": "fresh", "b": "fresh", "c": "rotten"}
    items = items_frame([{"item_id": k, "modality": "text", "text": v, "content_hash": k, "label": labels[k]} for k, v in texts.items()])
    findings = pd.concat([
        make_findings(list(texts), "near_duplicate", [0.1, 0.0, 0.97], [False, False, True],
                      [None, None, "near copy of a"], [{}] * 3, related_item_ids=[None, None, "a"], group_ids=["near:a", None, "near:a"]),
        make_findings(list(texts), "label_error", [0.2, 0.9, 0.1], [False, True, False],
                      [None, "labelled 'fresh' but the data supports 'rotten'", None], [{}] * 3,
                      related_item_ids=[None, "c", None], suggested_labels=[None, "rotten", None]),
    ], ignore_index=True)
    run_id = store.create_run(dataset=dataset, source="reviews.jsonl", modality="text", config={})
    store.save_items(run_id, items)
    store.save_vectors("toy", list(texts), np.array([[1, 0], [0, 1], [0.9, 0.1]], np.float32))
    store.mark_stage(run_id, "embed", {"model_id": "toy"})
    store.save_results(run_id, findings, _pairs([("a", "c", 0.97, "cosine")]))
    store.finish_run(run_id, status="completed", counts={"items": 3, "flagged": {"near_duplicate": 1, "label_error": 1}})
    return run_id


def _ranked_run(store: Store, n: int = 60, dataset: str = "ranked") -> str:
    """``n`` texts with outlier scores i/n (t59 highest), labels alternating a/b, the top half flagged."""
    ids = [f"t{i:02d}" for i in range(n)]
    items = items_frame([{"item_id": i, "modality": "text", "text": f"text {i}", "content_hash": i, "label": "ab"[k % 2]}
                         for k, i in enumerate(ids)])
    findings = make_findings(ids, "outlier", [k / n for k in range(n)], [k >= n // 2 for k in range(n)],
                             [f"far out ({k})" for k in range(n)], [{}] * n)
    run_id = store.create_run(dataset=dataset, source="ranked.jsonl", modality="text", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, _pairs([]))
    store.finish_run(run_id, status="completed", counts={"items": n, "flagged": {"outlier": n // 2}})
    return run_id


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    """An empty database path; ``WINNOW_DB`` points at it."""
    path = tmp_path / "audit.duckdb"
    monkeypatch.setenv("WINNOW_DB", str(path))
    return path


def _open(page: str | None = None, run_id: str | None = None, **state) -> AppTest:
    """The app on ``page`` (a file under dashboard/views/) with ``run_id`` chosen."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    if run_id:
        at.query_params["run"] = run_id
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _submit(at: AppTest, form: str, decision: str) -> AppTest:
    """Press the decision button of ``form`` (the buttons behind the Y / N / L / K shortcuts)."""
    at.button(key=f"{form}_{decision}").click().run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The first dataframe on the page that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


# -- Runs -----------------------------------------------------------------------------------------


def test_runs_page_lists_runs_with_counts_and_remembers_the_choice(db, tmp_path):
    image_run = _image_run(Store(db), tmp_path / "images")
    text_run = _text_run(Store(db))
    at = _open()
    assert str(db.resolve()) in at.sidebar.caption[0].value
    runs = _table(at, "run_id")
    assert runs["run_id"].tolist() == [text_run, image_run]
    image_row = runs.set_index("run_id").loc[image_run]
    assert (image_row["exact_duplicate"], image_row["corrupt"], image_row["flagged (all)"]) == (1, 1, 2)
    assert at.session_state["run"] == text_run  # newest first
    assert {m.label: m.value for m in at.metric} == {"label_error": "1", "near_duplicate": "1"}

    at.selectbox(key="run").set_value(image_run).run()
    assert at.query_params["run"] == image_run
    assert {m.label: m.value for m in at.metric} == {"corrupt": "1", "exact_duplicate": "1"}
    at.switch_page("views/export.py").run()
    assert at.session_state["run"] == image_run  # other pages use the same run


def test_run_comes_from_the_query_parameter(db, tmp_path):
    image_run = _image_run(Store(db), tmp_path / "images")
    _text_run(Store(db))
    at = _open(run_id=image_run)
    assert at.session_state["run"] == image_run


def test_missing_database_shows_message(tmp_path, monkeypatch):
    monkeypatch.setenv("WINNOW_DB", str(tmp_path / "nothing.duckdb"))
    at = _open()
    assert "no winnow database at" in at.info[0].value
    assert not at.dataframe


def test_database_without_runs_shows_message(db):
    Store(db).initialize()
    at = _open()
    assert "has no runs yet" in at.info[0].value
    assert not at.dataframe


# -- Triage queue ---------------------------------------------------------------------------------


def test_image_queue_records_one_decision_and_shows_it(db, tmp_path):
    run_id = _image_run(Store(db), tmp_path / "images")
    at = _open("triage", run_id, reviewer="ada")
    assert at.selectbox(key="queue_issue").value == "corrupt"
    assert not at.get("image")  # broken.png cannot be shown
    assert any("cannot display" in c.value for c in at.caption)

    at.selectbox(key="queue_issue").set_value("exact_duplicate").run()
    assert any(c.value.startswith("**red_copy.png** · 1.000 · flagged") for c in at.caption)
    assert any("byte-identical to red.png" in c.value for c in at.caption)
    at.checkbox(key="pick_0_exact_duplicate_red_copy.png").check().run()
    _submit(at, "queue_decide", "confirmed")

    decisions = Store(db).decisions_for(run_id)
    assert decisions[["item_id", "issue_type", "decision", "reviewer"]].values.tolist() == [["red_copy.png", "exact_duplicate", "confirmed", "ada"]]
    assert "Recorded confirmed for 1 exact_duplicate item(s)." in at.success[0].value
    assert any("✔ confirmed (ada)" in c.value for c in at.caption)


def test_text_queue_relabels_a_selection_in_bulk(db):
    run_id = _ranked_run(Store(db))
    at = _open("triage", run_id)
    at.session_state["queue_table_0_outlier"] = {"selection": {"rows": [0, 1, 2], "columns": []}}
    at.run()
    at.selectbox(key="queue_decide_label").set_value("b")
    _submit(at, "queue_decide", "relabel")
    decisions = Store(db).decisions_for(run_id).sort_values("item_id")
    assert decisions["item_id"].tolist() == ["t57", "t58", "t59"]
    assert set(decisions["decision"]) == {"relabel"} and set(decisions["new_label"]) == {"b"}
    table = _table(at, "decision")
    assert table["decision"].iloc[:3].str.startswith("relabel → b").all() and table["decision"].iloc[3] == ""


def test_queue_pages_in_score_order(db):
    run_id = _ranked_run(Store(db))
    at = _open("triage", run_id)
    assert "30 matching outlier findings" in at.caption[0].value or any("30 matching" in c.value for c in at.caption)
    first = _table(at, "item_id")["item_id"].tolist()
    assert first == [f"t{i}" for i in range(59, 35, -1)]  # 24 per page
    at.button(key="select_page").click().run()  # A: the whole page
    assert at.button(key="queue_decide_confirmed").label == "Confirm 24"
    at.button(key="queue_page_next").click().run()  # PageDown
    assert _table(at, "item_id")["item_id"].tolist() == [f"t{i}" for i in range(35, 29, -1)]
    assert any("showing 25–30" in c.value for c in at.caption)
    assert at.button(key="queue_decide_confirmed").label == "Confirm 0"  # the selection was of page 1


def test_queue_filters_flagged_label_score_and_undecided(db):
    store = Store(db)
    run_id = _ranked_run(store)
    at = _open("triage", run_id)
    at.checkbox(key="queue_flagged").uncheck().run()
    assert any("60 matching" in c.value for c in at.caption)
    at.selectbox(key="queue_label").set_value("b").run()
    ids = _table(at, "item_id")["item_id"].tolist()
    assert any("30 matching" in c.value for c in at.caption) and ids[0] == "t59" and all(int(i[1:]) % 2 for i in ids)
    at.slider(key="queue_score_outlier").set_value((0.1, 0.5)).run()
    ids = _table(at, "item_id")["item_id"].tolist()
    assert ids == [f"t{i:02d}" for i in (29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7)]
    store.record_decisions(run_id, ["t29", "t27"], "outlier", "dismissed", reviewer="bo")
    at.checkbox(key="queue_undecided").check().run()
    assert _table(at, "item_id")["item_id"].tolist()[:2] == ["t25", "t23"]


def test_decisions_from_an_earlier_run_show_in_a_rerun(db):
    store = Store(db)
    first = _ranked_run(store)
    store.record_decision(first, "t59", "outlier", "keep", reviewer="cy")
    second = _ranked_run(store)  # the same dataset audited again
    at = _open("triage", second)
    table = _table(at, "decision")
    assert table.set_index("item_id").loc["t59", "decision"] == "keep (cy)"
    at.checkbox(key="queue_undecided").check().run()
    assert "t59" not in _table(at, "item_id")["item_id"].tolist()


# -- Duplicates, label errors, item detail, export ------------------------------------------------


def test_duplicates_page_shows_a_group_with_its_keeper_at_the_same_scale(db, tmp_path):
    run_id = _image_run(Store(db), tmp_path / "images")
    at = _open("duplicates", run_id)
    header = next(m.value for m in at.markdown if m.value.startswith("**Group"))
    assert "`exact:red.png`" in header and "2 members" in header and "keeper **red.png** (the first seen)" in header
    keeper, copy = [m.value for m in at.markdown if m.value.startswith("**keeper") or m.value.startswith("*duplicate")]
    assert "red.png" in keeper and "red_copy.png" in copy
    assert any("similarity 1.0000 to the keeper · sha256" in c.value and "leaves the cleaned set" in c.value for c in at.caption)
    assert len(at.get("image")) == 2


def test_duplicates_page_diffs_texts_and_records_a_decision(db):
    run_id = _text_run(Store(db))
    at = _open("duplicates", run_id)
    at.radio(key="dup_issue").set_value("near_duplicate").run()
    diff = next(m.value for m in at.markdown if m.value.startswith("diff"))
    assert "<del" in diff and "gorgeous," in diff and "<ins" in diff and "family!" in diff
    at.checkbox(key="dup_0_near_duplicate_c").check().run()
    _submit(at, "dup_decide", "dismissed")
    assert Store(db).decisions_for(run_id)[["item_id", "decision"]].values.tolist() == [["c", "dismissed"]]


def test_changing_the_keeper_is_honoured_by_the_cli_and_the_ui_export(db, tmp_path):
    from typer.testing import CliRunner

    from winnow.cli import app

    run_id = _image_run(Store(db), tmp_path / "images")
    at = _open("duplicates", run_id, reviewer="eve")
    at.button(key="keeper_exact_duplicate_red_copy.png").click().run()
    assert not at.exception, at.exception
    assert "red_copy.png is now the keeper of exact:red.png; red.png confirmed as duplicate(s)." in at.success[0].value
    assert "keeper **red_copy.png** (chosen by a reviewer)" in next(m.value for m in at.markdown if m.value.startswith("**Group"))
    decisions = Store(db).decisions_for(run_id).sort_values("item_id")
    assert decisions[["item_id", "decision", "reviewer"]].values.tolist() == [["red.png", "confirmed", "eve"], ["red_copy.png", "keep", "eve"]]

    out = tmp_path / "clean.csv"
    result = CliRunner().invoke(app, ["export", "--what", "clean", "--out", str(out), "--db", str(db)])
    assert result.exit_code == 0, result.output
    cli_ids = sorted(pd.read_csv(out)["item_id"])
    at.switch_page("views/export.py").run()
    at.radio(key="export_what").set_value("clean").run()
    next(b for b in at.button if b.label == "Prepare export").click().run()
    ui_ids = sorted(_table(at, "item_id")["item_id"])
    assert cli_ids == ui_ids == ["blue.png", "red_copy.png"]  # the old keeper and the broken file are gone

    Store(db).set_keeper(run_id, "exact_duplicate", "exact:red.png", "red.png", reviewer="eve")  # and back
    assert sorted(Store(db).clean_items(run_id)["item_id"]) == ["blue.png", "red.png"]
    with pytest.raises(WinnowError, match="not a member"):
        Store(db).set_keeper(run_id, "exact_duplicate", "exact:red.png", "blue.png")


def test_label_errors_page_shows_given_vs_suggested_with_neighbours(db):
    run_id = _text_run(Store(db))
    at = _open("label_errors", run_id)
    header = next(m.value for m in at.markdown if "suggested" in m.value)
    assert header.startswith("**b** · given **:red[fresh]** → suggested **:green[rotten]**")
    evidence = _table(at, "evidence")
    assert evidence[["item_id", "label", "evidence"]].values.tolist() == [["c", "rotten", "nearest conflicting item"]]
    at.checkbox(key="lab_0_b").check().run()
    assert at.selectbox(key="lab_decide_label").value == "each item's suggested label"
    _submit(at, "lab_decide", "relabel")
    assert Store(db).decisions_for(run_id)[["item_id", "decision", "new_label"]].values.tolist() == [["b", "relabel", "rotten"]]


def test_item_detail_shows_every_issue_type_and_decision(db):
    store = Store(db)
    run_id = _text_run(store)
    store.record_decision(run_id, "b", "label_error", "dismissed", reviewer="di")
    at = _open("item", run_id, detail_item="b")
    findings = _table(at, "issue_type")
    assert sorted(findings["issue_type"]) == ["label_error", "near_duplicate"]
    decisions = _table(at, "decision")
    assert decisions[["issue_type", "decision", "reviewer"]].values.tolist() == [["label_error", "dismissed", "di"]]
    assert at.text[0].value == "A tedious mess."


def test_export_page_gives_the_cleaned_dataset(db, tmp_path):
    run_id = _image_run(Store(db), tmp_path / "images")
    at = _open("export", run_id)
    at.radio(key="export_what").set_value("clean").run()
    [button] = [b for b in at.button if b.label == "Prepare export"]
    button.click().run()
    assert "2 rows ready." in at.success[0].value  # red_copy.png and broken.png are flagged
    assert sorted(_table(at, "item_id")["item_id"]) == ["blue.png", "red.png"]


def test_images_outside_the_source_folder_are_not_served(tmp_path):
    from dashboard.ui import safe_uri

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"x")
    run = {"source": str(tmp_path / "src")}
    assert safe_uri(str(tmp_path / "src" / "a.png"), run) is not None
    assert safe_uri(str(tmp_path / "src" / ".." / "secret.png"), run) is None


# -- The unsure band, re-ranking by decisions, the embedding map, drift on the Runs page ------------


def _thresholded_run(store: Store, n: int = 40) -> str:
    """``n`` texts with outlier scores k/n and the detector's threshold 0.75 recorded in each detail:
    t30 and above are flagged, and t29–t31 lie in the unsure band (±0.039 around 0.75)."""
    ids = [f"t{k:02d}" for k in range(n)]
    items = items_frame([{"item_id": i, "modality": "text", "text": f"text {i}", "content_hash": i} for i in ids])
    scores = [k / n for k in range(n)]
    findings = make_findings(ids, "outlier", scores, [s >= 0.75 for s in scores], [f"far out ({s})" if s >= 0.75 else None for s in scores],
                             [{"threshold": 0.75}] * n)
    run_id = store.create_run(dataset="thresholded", source="t.jsonl", modality="text", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, _pairs([]))
    store.finish_run(run_id, status="completed", counts={"items": n})
    return run_id


def _clustered_run(store: Store, n: int = 40) -> str:
    """``n`` texts in two embedding clusters (every 4th item in cluster A, the real issues), with
    off_topic scores that do not know it (a saw-tooth over the ids), flagged above 0.5."""
    rng = np.random.default_rng(0)
    ids = [f"c{k:02d}" for k in range(n)]
    in_a = np.array([k % 4 == 0 for k in range(n)])
    vectors = np.where(in_a[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]) + rng.normal(0, 0.05, (n, 3))
    items = items_frame([{"item_id": i, "modality": "text", "text": f"text {i}", "content_hash": i, "label": "xy"[k % 2]}
                         for k, i in enumerate(ids)])
    scores = [((k * 7) % n) / n for k in range(n)]
    findings = make_findings(ids, "off_topic", scores, [s > 0.5 for s in scores], [f"odd ({s:.2f})" for s in scores], [{}] * n)
    run_id = store.create_run(dataset="clustered", source="c.jsonl", modality="text", config={})
    store.save_items(run_id, items)
    store.save_vectors("toy3", ids, vectors.astype(np.float32))
    store.mark_stage(run_id, "embed", {"model_id": "toy3", "cached": 30, "computed": 10})
    store.save_results(run_id, findings, _pairs([]))
    store.finish_run(run_id, status="completed", counts={"items": n})
    return run_id


def test_unsure_band_is_its_own_queue_and_comes_first(db):
    store = Store(db)
    run_id = _thresholded_run(store)
    at = _open("triage", run_id)
    assert at.radio(key="queue_mode_outlier").value == "unsure"
    assert "3 item(s) scored 0.725–0.775, close to the detector's threshold (0.750)" in at.caption[0].value
    table = _table(at, "item_id")
    assert table["item_id"].tolist() == ["t31", "t30", "t29"] and table["flagged"].tolist() == [True, True, False]
    assert table["reason"].iloc[2].startswith("not flagged")  # every item shows a reason

    store.record_decisions(run_id, ["t29", "t30", "t31"], "outlier", "dismissed")
    st.cache_data.clear()  # the band's counts are cached for a few seconds
    at = _open("triage", run_id)  # the band is done: a new session starts on the whole queue
    assert at.radio(key="queue_mode_outlier").value == "ranked"
    assert _table(at, "item_id")["item_id"].tolist() == [f"t{k}" for k in range(39, 29, -1)]


def test_rerank_moves_items_like_the_confirmed_ones_forward_and_counts_reviews_saved(db):
    store = Store(db)
    run_id = _clustered_run(store)
    confirmed, dismissed = ["c00", "c04", "c08"], ["c01", "c02", "c03"]
    store.record_decisions(run_id, confirmed, "off_topic", "confirmed")
    store.record_decisions(run_id, dismissed, "off_topic", "dismissed")
    at = _open("triage", run_id)
    at.checkbox(key="queue_flagged").uncheck().run()
    at.selectbox(key="queue_page_size").set_value(48).run()
    before = _table(at, "item_id")["item_id"].tolist()
    at.toggle(key="queue_rerank").set_value(True).run()
    assert not at.exception, at.exception
    assert any("re-ranked by your decisions" in c.value for c in at.caption)
    after = _table(at, "item_id")["item_id"].tolist()
    undecided_a = [f"c{k:02d}" for k in range(12, 40, 4)]
    assert sorted(after[:7]) == undecided_a and before[:7] != after[:7]  # cluster A's undecided items lead
    assert set(after[-6:]) == set(confirmed + dismissed)  # decided items go last
    at.button(key="replay").click().run()
    [saved] = [m for m in at.metric if m.label == "Reviews saved"]
    assert int(saved.value) >= 0 and any("Replaying your 6 decisions" in c.value for c in at.caption)


def test_rerank_waits_for_two_decisions_of_each_kind(db):
    run_id = _clustered_run(Store(db))
    Store(db).record_decisions(run_id, ["c00"], "off_topic", "confirmed")
    at = _open("triage", run_id, queue_rerank=True)
    assert any("at least two items each" in i.value for i in at.info)


def test_embedding_map_lists_the_items_of_a_selected_region(db):
    run_id = _clustered_run(Store(db))
    at = _open("map", run_id)
    assert "40 items drawn" in at.caption[0].value
    assert any("Select a region" in i.value for i in at.info)
    at.session_state["map_chart"] = {"selection": {"region": {"x": [-10.0, 10.0], "y": [-10.0, 10.0]}}}
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "40 item(s) in the selected region"
    assert len(_table(at, "issues")) == 40
    at.radio(key="map_colour").set_value("label").run()
    assert not at.exception, at.exception


def test_embedding_map_without_vectors_says_so(db):
    run_id = _ranked_run(Store(db))
    at = _open("map", run_id)
    assert "embeddings are not in the database" in at.info[0].value


def test_runs_page_shows_drift_and_the_embedding_cache(db):
    from winnow.findings import RUN_ITEM_ID

    store = Store(db)
    run_id = _clustered_run(store)
    drift = make_findings([RUN_ITEM_ID], "drift", [0.99], [True], ["drift: embedding MMD below α/2 = 0.025"],
                          [{"alpha": 0.05, "p_value": 0.006, "p_values": {"mmd": 0.003, "ks": 0.4}, "effects": {"mmd2": 0.12, "ks_max": 0.1},
                            "samples": {"reference_tested": 40, "batch_tested": 40}}])
    store.save_results(run_id, pd.concat([store.findings(run_id), drift], ignore_index=True), _pairs([]))
    store.finish_run(run_id, status="completed", counts={"items": 40, "drift": {"reference": "20260101-000000-abcdef"}})
    at = _open(run_id=run_id)
    assert "embedding cache: 75% hits (30 of 40 vectors) · model `toy3`" in [c.value for c in at.caption]
    assert at.error[0].value == "**Drift** against run 20260101-000000-abcdef: embedding MMD below α/2 = 0.025."  # the verdict once
    tests = _table(at, "p-value")
    assert tests[["test", "p-value"]].values.tolist() == [["embedding MMD", 0.003], ["PCA-KS", 0.4]]


# -- Evidence inside the items: text spans, changed words, failing cells; the filter list ---------


def _quality_text_run(store: Store) -> str:
    """Texts with low_quality findings: one with an e-mail address and a phone number (pii fired)."""
    texts = {"pii": "Great film, write to me at bob@example.com or call 555-123-4567 for the tickets.",
             "fine": "A quiet, careful film about two brothers and the farm they cannot sell.",
             "short": "Meh."}
    items = items_frame([{"item_id": k, "modality": "text", "text": v, "content_hash": k} for k, v in texts.items()])
    findings = make_findings(list(texts), "low_quality", [0.9, 0.1, 0.8], [True, False, True],
                             ["contains personal data (1 e-mail address, 1 phone number)", None, "too short (4 characters)"],
                             [{"fired": ["pii"]}, {"fired": []}, {"fired": ["too_short"]}])
    run_id = store.create_run(dataset="quality", source="q.jsonl", modality="text", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, _pairs([]))
    store.finish_run(run_id, status="completed", counts={"items": 3})
    return run_id


def test_text_queue_marks_the_evidence_in_snippets_and_in_the_selected_text(db):
    run_id = _quality_text_run(Store(db))
    at = _open("triage", run_id)
    table = _table(at, "text").set_index("item_id")
    assert table.loc["pii", "text"] == "Great film, write to me at «bob@example.com» or call «555-123-4567» for the tickets."
    assert table.loc["short", "text"] == "Meh."  # a rule about the whole text marks nothing
    at.session_state["queue_table_0_low_quality"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    shown = next(m.value for m in at.markdown if "<mark" in m.value)
    assert "<mark title='e-mail address'" in shown and "555-123-4567</mark>" in shown


def test_near_duplicate_queue_marks_the_words_the_copy_changed(db):
    run_id = _text_run(Store(db))
    at = _open("triage", run_id)
    at.selectbox(key="queue_issue").set_value("near_duplicate").run()
    assert _table(at, "text").set_index("item_id").loc["c", "text"] == "A «gorgeous» moving portrait of a «family!»"


def _table_run(store: Store, folder: Path) -> str:
    """A real CSV of four rows; row 1 fails a price check, row 2 has an unreadable qty."""
    folder.mkdir()
    source = folder / "shop.csv"
    pd.DataFrame({"sku": ["a", "b", "c", "d"], "price": [3.0, -1.0, 5.0, 7.0], "qty": ["1", "2", "n/a", "4"]}).to_csv(source, index=False)
    ids = ["a", "b", "c", "d"]
    items = items_frame([{"item_id": i, "modality": "tabular", "content_hash": i, "metadata": f'{{"row": {k}}}'} for k, i in enumerate(ids)])
    findings = pd.concat([
        make_findings(ids, "check_failed", [0, 1, 0, 0], [False, True, False, False], [None, "price = -1.0 is below the minimum 0", None, None],
                      [{}, {"failures": [{"column": "price", "tolerated": False}]}, {}, {}]),
        make_findings(ids, "corrupt", [0, 0, 1, 0], [False, False, True, False], [None, None, "column 'qty' has a non-numeric value 'n/a'", None],
                      [{}, {}, {"error": "column 'qty' has a non-numeric value 'n/a'"}, {}]),
    ], ignore_index=True)
    run_id = store.create_run(dataset="shop", source=str(source), modality="tabular", config={"id_col": "sku"})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, _pairs([]))
    store.finish_run(run_id, status="completed", counts={"items": 4})
    return run_id


def _marked_cells(at: AppTest) -> list[str]:
    """The cells of the page's styled table that carry the failing-cell style, as ``row_col`` ids."""
    import re

    css = next(d.proto.arrow_data.styler.styles for d in at.dataframe if d.proto.arrow_data.styler.styles)
    return sorted(set(re.findall(r"_(row\d+_col\d+)\s*\{[^}]*background-color: #ffd6d6", css)))


def test_table_queue_marks_the_failing_cells(db, tmp_path):
    run_id = _table_run(Store(db), tmp_path / "shop")
    at = _open("triage", run_id)
    at.selectbox(key="queue_issue").set_value("check_failed").run()
    table = _table(at, "· price")
    assert table["item_id"].tolist() == ["b"]
    assert _marked_cells(at) == [f"row0_col{list(table.columns).index('· price')}"]
    assert any("marked in red" in c.value for c in at.caption)
    at.selectbox(key="queue_issue").set_value("corrupt").run()
    table = _table(at, "· qty")
    assert table["item_id"].tolist() == ["c"] and _marked_cells(at) == [f"row0_col{list(table.columns).index('· qty')}"]


def test_export_page_gives_the_filter_list_of_the_cleaned_dataset(db, tmp_path):
    store = Store(db)
    run_id = _image_run(store, tmp_path / "images")
    store.record_decision(run_id, "blue.png", "corrupt", "confirmed", reviewer="fay")  # a confirmation removes an unflagged item
    at = _open("export", run_id)
    at.radio(key="export_what").set_value("filter_list").run()
    next(b for b in at.button if b.label == "Prepare export").click().run()
    dropped = _table(at, "why").set_index("item_id")
    assert sorted(dropped.index) == ["blue.png", "broken.png", "red_copy.png"]
    assert sorted(dropped.index) == sorted(set(store.load_items(run_id)["item_id"]) - set(store.clean_items(run_id)["item_id"]))
    assert dropped.loc["red_copy.png", "why"] == "exact_duplicate: byte-identical to red.png"
    assert dropped.loc["blue.png", "why"] == "corrupt: confirmed by a reviewer"


def test_item_detail_marks_the_evidence_of_its_flagged_findings(db, tmp_path):
    text_run = _quality_text_run(Store(db))
    at = _open("item", text_run, detail_item="pii")
    shown = next(m.value for m in at.markdown if "<mark" in m.value)
    assert "bob@example.com</mark>" in shown and any("Highlighted: e-mail address, phone number" in c.value for c in at.caption)
    table_run = _table_run(Store(db), tmp_path / "shop")
    at = _open("item", table_run, detail_item="b")
    assert _marked_cells(at) == [f"row0_col{list(_table(at, 'price').columns).index('price')}"]
    assert any(c.value == "row 2 of the table" for c in at.caption)


def test_the_relabel_target_does_not_keep_suggestions_from_another_queue(db):
    run_id = _text_run(Store(db))
    at = _open("triage", run_id)
    at.selectbox(key="queue_issue").set_value("label_error").run()
    assert at.selectbox(key="queue_decide_label").value == "each item's suggested label"
    at.selectbox(key="queue_issue").set_value("near_duplicate").run()  # no item here has a suggestion
    assert at.selectbox(key="queue_decide_label").value == "fresh"
    assert "each item's suggested label" not in at.selectbox(key="queue_decide_label").options


def test_no_page_script_has_a_bare_string_that_streamlit_would_write_on_the_page():
    import ast

    for path in sorted((APP.parent / "views").glob("*.py")):
        body = ast.parse(path.read_text()).body
        strays = [node.lineno for node in body[1:] if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)]
        assert not strays, f"{path.name} lines {strays}: Streamlit's magic writes a bare string on the page; make it a comment"
