"""The Python API: in-memory sources, precomputed embeddings, the Report and its exports."""

import json
import runpy

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

import winnow
from tests.conftest import TEXTS, fashion_images
from winnow.errors import ConfigError, SourceError
from winnow.findings import FINDINGS_COLUMNS

pytestmark = pytest.mark.usefixtures("prefect_harness")

REVIEWS = pd.DataFrame([{"review": t, "stars": 5 if label == "pos" else 1} for _, t, label in TEXTS if t])


def test_dataframe_with_labels_comes_back_cleaned_as_a_dataframe(tmp_path):
    frame = REVIEWS.rename(columns={"review": "text"})
    report = winnow.audit(frame, db=tmp_path / "a.duckdb", labels=frame["stars"])
    assert tuple(report.findings.columns) == FINDINGS_COLUMNS
    assert report.info["modality"] == "text"
    clean = report.clean()
    assert isinstance(clean, pd.DataFrame)
    assert len(clean) < len(frame) and frame.loc[2, "text"] not in set(clean["text"])  # the case/space copy
    summary = report.summary().set_index("issue_type")
    assert summary.loc["exact_duplicate", "flagged"] == 1
    top = report.top("exact_duplicate", 1)
    assert top["item_id"].iloc[0] == "2" and "exact copy of 0" in top["reason"].iloc[0]


def test_list_of_texts_and_arrow_table_keep_their_type(tmp_path):
    texts = [t for _, t, _ in TEXTS if t]
    assert isinstance(winnow.audit(texts, db=tmp_path / "b.duckdb").clean(), list)
    table = pa.table({"text": texts})
    cleaned = winnow.audit(table, db=tmp_path / "b.duckdb").clean()
    assert isinstance(cleaned, pa.Table)
    remaining = set(cleaned.column("text").to_pylist())
    assert texts[2] not in remaining and texts[3] not in remaining  # the exact and the near copy
    assert cleaned.num_rows == len(texts) - 2


def test_pil_images_render_thumbnails_in_a_notebook(tmp_path):
    images = [Image.fromarray(p) for p, _ in fashion_images(4)]
    labels = [label for _, label in fashion_images(4)]
    images.append(images[0].copy())
    labels.append(labels[0])
    report = winnow.audit(images, labels=labels, db=tmp_path / "c.duckdb")
    assert report.info["modality"] == "image"
    page = report._repr_html_()
    assert "<img src='data:image/png;base64," in page and "exact_duplicate" in page
    cleaned = report.clean()
    assert isinstance(cleaned, list) and len(cleaned) == len(images) - 1
    labels_file = report.to_fiftyone(tmp_path / "fo.json")
    exported = json.loads(labels_file.read_text())  # what fiftyone.Dataset.from_dict loads
    samples, fields = exported["samples"], exported["sample_fields"]
    assert len(samples) == len(images)
    assert [s["winnow_item_id"] for s in samples if "exact_duplicate" in s["tags"]] == [str(len(images) - 1)]  # the copy
    assert samples[0]["ground_truth"] == {"_cls": "Classification", "label": labels[0]}
    assert exported["media_type"] == "image" and fields["ground_truth"].endswith("(fiftyone.core.labels.Classification)")
    assert fields["winnow_exact_duplicate"] == "fiftyone.core.fields.FloatField"
    assert all(set(s) - {"filepath", "tags"} <= set(fields) for s in samples)  # from_dict refuses undeclared fields


def test_precomputed_embeddings_skip_the_model(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(REVIEWS), 8))
    features[3] = features[1] * 1.001  # the same point twice, with different texts
    report = winnow.audit(REVIEWS, db=tmp_path / "d.duckdb", text_col="review", embeddings=features)
    assert report.info["model_id"].startswith("precomputed:")
    assert report.info["embed"]["computed"] == 0
    near = report.findings.query("issue_type == 'near_duplicate' and flagged")
    assert near["item_id"].tolist() == ["3"] and near["related_item_id"].tolist() == ["1"]
    with pytest.raises(ConfigError, match="one row per item"):
        winnow.audit(REVIEWS, db=tmp_path / "d.duckdb", text_col="review", embeddings=features[:3])


def test_exports_for_other_tools(tmp_path):
    report = winnow.audit(REVIEWS, db=tmp_path / "e.duckdb", text_col="review")
    cleanlab = report.to_cleanlab()
    assert {"is_exact_duplicate_issue", "exact_duplicate_score"} <= set(cleanlab.columns)
    assert cleanlab["exact_duplicate_score"].between(0, 1).all()
    worst = cleanlab.loc[cleanlab["exact_duplicate_score"].idxmin(), "item_id"]
    assert worst == "2"  # lower = worse, as in cleanlab
    listing = report.filter_list(tmp_path / "filter.parquet")
    assert pd.read_parquet(tmp_path / "filter.parquet")["remove"].sum() == listing["remove"].sum() >= 1
    assert "exact_duplicate" in listing.set_index("item_id").loc["2", "issue_types"]
    assert listing.set_index("item_id").loc["0", "issue_types"] == []


def test_unsupported_sources_say_what_is_supported(tmp_path):
    with pytest.raises(SourceError, match="pandas or polars DataFrame"):
        winnow.audit({"not": "data"}, db=tmp_path / "f.duckdb")
    with pytest.raises(SourceError, match="one label per item"):
        winnow.audit(["a b c", "d e f"], labels=["x"], db=tmp_path / "f.duckdb")


def test_documented_notebook_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(pytest.importorskip("pathlib").Path(__file__).parent.parent / "docs" / "notebook.py"))
    assert namespace["report"].summary()["flagged"].sum() > 0


def test_hugging_face_dataset_with_class_labels(tmp_path):
    datasets = pytest.importorskip("datasets")  # a dev dependency; the API imports it only for such sources
    texts = [t for _, t, _ in TEXTS if t]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    dataset = datasets.Dataset.from_dict({"text": texts, "label": [int(i % 2) for i in range(len(texts))]}, features=features)
    report = winnow.audit(dataset, db=tmp_path / "hf.duckdb")
    assert set(report.items["label"]) == {"neg", "pos"}
    cleaned = report.clean()
    assert isinstance(cleaned, datasets.Dataset) and len(cleaned) < len(dataset)


def test_polars_frame_and_user_pred_probs(tmp_path):
    pl = pytest.importorskip("polars")  # a dev dependency
    frame = pl.DataFrame({"text": REVIEWS["review"].tolist(), "y": ["good" if s == 5 else "bad" for s in REVIEWS["stars"]]})
    # the caller's probabilities (classes in sorted order: bad, good) call row 1 clearly good though it is labelled bad
    assert frame["y"][1] == "bad"
    probs = np.array([[0.1, 0.9] if y == "good" else [0.9, 0.1] for y in frame["y"]])
    probs[1] = [0.02, 0.98]
    report = winnow.audit(frame, db=tmp_path / "p.duckdb", label_col="y", pred_probs=probs, params={"label_error": {"min_disagreement": 0.0}})
    errors = report.findings.query("issue_type == 'label_error'").set_index("item_id")
    assert errors.index[errors["flagged"]].tolist() == ["1"] and errors.loc["1", "suggested_label"] == "good"
    assert json.loads(errors.loc["1", "detail"])["p_given"] == pytest.approx(0.02)
    assert isinstance(report.clean(), pl.DataFrame)


def test_audit_runs_inside_a_users_flow(tmp_path):
    from prefect import flow

    @flow
    def nightly():
        return winnow.audit([t for _, t, _ in TEXTS if t], db=tmp_path / "inside.duckdb").run_id

    run_id = nightly()
    assert winnow.store.Store(tmp_path / "inside.duckdb").get_run(run_id)["status"] == "completed"


def test_unusable_embedding_rows_are_refused(tmp_path):
    features = np.ones((len(REVIEWS), 4))
    features[2] = 0.0
    with pytest.raises(ConfigError, match=r"rows \[2\] .* all zero"):
        winnow.audit(REVIEWS, db=tmp_path / "z.duckdb", text_col="review", embeddings=features)
