"""Incremental audits in real flow runs: a second batch of real images audited against the first
run — cache hit rate, copies of reference items, off-topic items, decisions carried forward — and a
third batch against the second, which reaches the first run through the chain of references."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from flows.audit import audit_flow
from tests.conftest import fashion_images
from winnow.config import AuditConfig
from winnow.export import export
from winnow.findings import RUN_ITEM_ID
from winnow.report import summary_markdown
from winnow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

UNCHANGED = ["t-shirt_top/img_00.png", "t-shirt_top/img_01.png", "t-shirt_top/img_02.png", "trouser/img_10.png",
             "trouser/img_11.png", "sneaker/img_20.png", "sneaker/img_21.png"]
COPIED = "t-shirt_top/img_05.png"        # in run 1 only: batch 2 brings an exact copy of it
EDITED = "trouser/img_15.png"           # in run 1 only: batch 2 brings a JPEG re-encode of it
NEW = {"copy": "t-shirt_top/new_copy.png", "edit": "trouser/new_edit.jpg", "digit": "sneaker/new_digit.png"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Batch 1: 30 Fashion-MNIST images in three classes. Batch 2: seven of them unchanged, an
    exact copy and a JPEG re-encode of two batch-1 images it does not hold, and a handwritten digit.
    Batch 3: a copy of a batch-1 image and a copy of batch 2's digit."""
    root = tmp_path_factory.mktemp("incremental")
    first, second, third = root / "batch1", root / "batch2", root / "batch3"
    for i, (pixels, label) in enumerate(fashion_images(10)):
        (first / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(first / label / f"img_{i:02d}.png")
    assert (first / COPIED).exists() and (first / EDITED).exists()
    for relative in [*UNCHANGED, NEW["copy"], NEW["edit"]]:
        (second / relative).parent.mkdir(parents=True, exist_ok=True)
    for relative in UNCHANGED:
        shutil.copyfile(first / relative, second / relative)
    shutil.copyfile(first / COPIED, second / NEW["copy"])
    Image.open(first / EDITED).save(second / NEW["edit"], quality=90)
    digit = (load_digits().images[3] / 16.0 * 255).astype(np.uint8)
    Image.fromarray(digit).resize((28, 28), Image.Resampling.NEAREST).save(second / NEW["digit"])
    (third / "sneaker").mkdir(parents=True)
    shutil.copyfile(first / "sneaker/img_25.png", third / "sneaker/again_25.png")
    shutil.copyfile(second / NEW["digit"], third / "sneaker/again_digit.png")
    return first, second, third


@pytest.fixture(scope="module")
def runs(folders, tmp_path_factory):
    db = str(tmp_path_factory.mktemp("incremental-db") / "feed.duckdb")
    first, second, third = folders
    run1 = audit_flow(AuditConfig(source=str(first), name="feed"), db=db)
    run2 = audit_flow(AuditConfig(source=str(second), name="feed", reference="previous"), db=db)
    run3 = audit_flow(AuditConfig(source=str(third), name="feed", reference="previous"), db=db)
    return Store(db), run1, run2, run3


def finding(store, run, item, issue_type):
    found = store.findings(run["run_id"], issue_type=issue_type).set_index("item_id")
    return found.loc[item]


def test_only_new_content_is_embedded_and_the_hit_rate_is_recorded(runs):
    store, run1, run2, _ = runs
    assert run1["embed"] == {"cached": 0, "computed": 30, "hit_rate": 0.0}
    # 7 unchanged items and the exact copy come from the cache; the re-encode and the digit are new
    assert run2["embed"] == {"cached": 8, "computed": 2, "hit_rate": 0.8}
    assert store.stages(run2["run_id"])["embed"]["hit_rate"] == 0.8
    assert store.get_run(run2["run_id"])["counts"]["embed"]["hit_rate"] == 0.8
    assert "hit rate 80%" in summary_markdown(run2)


def test_the_reference_corpus_is_the_first_run_minus_the_items_the_batch_holds(runs):
    store, run1, run2, _ = runs
    reference = run2["reference"]
    assert reference["run"] == run1["run_id"] and reference["corpus_items"] == 30 - len(UNCHANGED)
    assert store.stages(run2["run_id"])["reference"]["run"] == run1["run_id"]
    ids = set(store.findings(run2["run_id"])["item_id"])
    assert ids == set(UNCHANGED) | set(NEW.values()) | {RUN_ITEM_ID}  # no reference item gets a finding


def test_copies_of_reference_items_point_at_them(runs):
    store, run1, run2, _ = runs
    exact = finding(store, run2, NEW["copy"], "exact_duplicate")
    assert exact["flagged"] and exact["related_item_id"] == COPIED
    assert f"in run {run1['run_id']}" in exact["reason"] and json.loads(exact["detail"])["related_run"] == run1["run_id"]
    near = finding(store, run2, NEW["edit"], "near_duplicate")
    assert near["flagged"] and near["related_item_id"] == EDITED
    assert f"{EDITED} is in run {run1['run_id']}" in near["reason"] and json.loads(near["detail"])["related_run"] == run1["run_id"]
    pairs = {(a, b): method for a, b, method in store.pairs(run2["run_id"])[["item_a", "item_b", "method"]].itertuples(index=False)}
    assert pairs[(COPIED, NEW["copy"])] == "reference:content_hash"
    assert pairs[(EDITED, NEW["edit"])].startswith("reference:")
    assert run2["reference"]["duplicates_of_reference"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert "duplicates of them: 1 exact duplicate, 1 near duplicate" in summary_markdown(run2)


def test_unchanged_items_are_not_copies_of_themselves(runs):
    store, _, run2, _ = runs
    for issue_type in ("exact_duplicate", "near_duplicate"):
        flagged = store.findings(run2["run_id"], issue_type=issue_type, flagged_only=True)
        assert not set(flagged["item_id"]) & set(UNCHANGED), issue_type


def test_an_off_topic_item_stands_out_against_the_reference(runs):
    store, _, run2, _ = runs
    off_topic = store.findings(run2["run_id"], issue_type="off_topic")
    assert list(off_topic[off_topic["flagged"]]["item_id"]) == [NEW["digit"]]
    assert off_topic.iloc[0]["item_id"] == NEW["digit"]  # ranked first among the batch


def test_the_chain_of_references_reaches_the_first_run(runs):
    store, run1, run2, run3 = runs
    assert set(run3["reference"]["runs"]) == {run1["run_id"], run2["run_id"]}
    again = finding(store, run3, "sneaker/again_25.png", "exact_duplicate")
    assert again["related_item_id"] == "sneaker/img_25.png" and json.loads(again["detail"])["related_run"] == run1["run_id"]
    digit = finding(store, run3, "sneaker/again_digit.png", "exact_duplicate")
    assert digit["related_item_id"] == NEW["digit"] and json.loads(digit["detail"])["related_run"] == run2["run_id"]


def test_decisions_on_the_first_run_apply_to_the_same_content_in_the_second(runs, tmp_path):
    store, run1, run2, _ = runs
    store.record_decision(run1["run_id"], UNCHANGED[0], "outlier", "confirmed", reviewer="ann", note="smudged")
    store.record_decision(run1["run_id"], UNCHANGED[1], "label_error", "relabel", new_label="shirt", reviewer="ann")
    carried = store.decisions_for(run2["run_id"]).set_index("item_id")
    assert carried.loc[UNCHANGED[0], "decision"] == "confirmed" and carried.loc[UNCHANGED[0], "reviewer"] == "ann"
    assert carried.loc[UNCHANGED[1], "new_label"] == "shirt"
    assert COPIED not in carried.index  # a decision follows its item, not a copy of it
    clean = store.clean_items(run2["run_id"]).set_index("item_id")
    assert UNCHANGED[0] not in clean.index and clean.loc[UNCHANGED[1], "label"] == "shirt"
    _, rows = export(store, "clean", tmp_path / "clean.csv", run_id=run2["run_id"])
    assert rows == len(clean)


def test_the_reference_sample_brings_its_thumbnails_to_the_batch_detectors(runs):
    """The outliers' orientation member and the label errors' pixel probe read thumbnails: the
    reference sample's are loaded from the properties cache, so neither is left out of a batch run."""
    store, _, run2, _ = runs
    outliers = store.findings(run2["run_id"], issue_type="outlier")
    details = [json.loads(d) for d in outliers["detail"]]
    assert len(details) == 10 and all("orientation" in d and "fits_better" in d for d in details)


def test_the_reference_sample_brings_its_texts_to_the_batch_detectors(text_jsonl, tmp_path):
    """The off-topic ``text_format`` member reads every text it scores: the reference sample's
    texts are read from the items table, so a text batch audited against its reference keeps it."""
    batch = tmp_path / "batch.jsonl"
    new = ["A warm, funny film that never hurries.", "Flat jokes and a plot that goes nowhere.",
           "Preheat the oven to 200 degrees and butter a large dish before adding the potatoes."]
    batch.write_text("\n".join(json.dumps({"id": f"n{i}", "text": t, "label": "pos"}) for i, t in enumerate(new)) + "\n")
    db = str(tmp_path / "texts.duckdb")
    options = dict(name="reviews", id_col="id", label_col="label")
    audit_flow(AuditConfig(source=str(text_jsonl), **options), db=db)
    run = audit_flow(AuditConfig(source=str(batch), reference="previous", **options), db=db)
    details = [json.loads(d) for d in Store(db).findings(run["run_id"], issue_type="off_topic")["detail"]]
    assert len(details) == len(new) and all("text_format" in d for d in details)
