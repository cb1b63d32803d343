import json

import numpy as np
import pandas as pd
import pytest

from detectors import REGISTRY, DetectorSpec, build_knn_graph, run_detectors, validate_params
from tests.detectors.conftest import make_items
from winnow.errors import ConfigError
from winnow.findings import FINDINGS_COLUMNS, PAIRS_COLUMNS


def inputs_for(vectors):
    labels = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 10 + ["a"] * (len(vectors) - 30), dtype=object)
    return {"knn": build_knn_graph(vectors, k=5), "vectors": vectors, "labels": labels}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_detector_honours_the_contract(name, clusters):
    spec = REGISTRY[name]
    items = make_items(31, {3: "h2"})
    result = spec.function(items, **{r: inputs_for(clusters)[r] for r in spec.requires})
    assert tuple(result.findings.columns) == FINDINGS_COLUMNS
    assert (result.findings["issue_type"] == name).all()
    assert sorted(result.findings["item_id"]) == sorted(items["item_id"])  # every item scored
    assert set(result.pairs.columns) <= set(PAIRS_COLUMNS)
    assert spec.name == name and spec.function.__name__ == f"detect_{name}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_detector_accepts_empty_input(name):
    spec = REGISTRY[name]
    items = make_items(0)
    vectors = np.zeros((0, 4), np.float32)
    empty = {"knn": build_knn_graph(vectors, k=5), "vectors": vectors, "labels": np.array([], dtype=object)}
    result = spec.function(items, **{r: empty[r] for r in spec.requires})
    assert result.findings.empty and tuple(result.findings.columns) == FINDINGS_COLUMNS


def test_missing_inputs_skip_and_failures_are_isolated(clusters):
    def detect_broken(items, *, knn):
        raise RuntimeError("boom")

    REGISTRY["broken"] = DetectorSpec("broken", detect_broken, frozenset({"image"}), frozenset({"knn"}), "always fails")
    try:
        items = make_items(31)
        outcome = run_detectors(items, "image", inputs_for(clusters))
        assert outcome.failed == {"broken": "RuntimeError: boom"}
        assert set(REGISTRY) - {"broken"} == set(outcome.results)
        skipped = run_detectors(items, "image", {}, names=["near_duplicate", "exact_duplicate"])
        assert skipped.skipped == {"near_duplicate": "missing inputs: knn"}
        assert set(skipped.results) == {"exact_duplicate"}
    finally:
        del REGISTRY["broken"]


def test_modality_defaults_apply_unless_overridden(clusters):
    items = make_items(31)
    knn = inputs_for(clusters)
    tabular = run_detectors(items, "tabular", knn, names=["near_duplicate"]).results["near_duplicate"]
    assert json.loads(tabular.findings["detail"].iloc[0])["threshold"] == 0.999
    custom = run_detectors(items, "tabular", knn, {"near_duplicate": {"threshold": 0.5}}, names=["near_duplicate"])
    assert json.loads(custom.results["near_duplicate"].findings["detail"].iloc[0])["threshold"] == 0.5


def test_unknown_names_and_params_list_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: exact_duplicate"):
        validate_params({"nope": {}})
    with pytest.raises(ConfigError, match="valid: threshold, phash_max_distance, min_cosine"):
        validate_params({"near_duplicate": {"thresh": 1}})
    with pytest.raises(ConfigError, match="unknown detector"):
        run_detectors(pd.DataFrame(), "image", {}, names=["nope"])
