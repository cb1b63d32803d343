"""Detectors: pure functions from items (+ shared inputs) to findings, and their registry.

Each detector lives in ``detectors/<issue_type>.py`` and exposes ``detect_<issue_type>``. The
registry says which inputs each needs; :func:`run_detectors` hands the shared inputs (the kNN graph
is built once per run) to every detector, skips one whose inputs are missing and records one that
raises, while the others still run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd

from detectors.exact_duplicate import detect_exact_duplicate
from detectors.knn import KnnGraph, build_knn_graph
from detectors.label_error import detect_label_error
from detectors.near_duplicate import detect_near_duplicate
from detectors.off_topic import detect_off_topic
from detectors.outlier import detect_outlier
from detectors.result import Detection
from winnow.errors import ConfigError

__all__ = ["REGISTRY", "DetectorSpec", "Detection", "KnnGraph", "build_knn_graph", "default_detectors", "run_detectors", "validate_params"]


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: its issue type, function, modalities and the inputs it needs."""

    name: str
    function: Callable[..., Detection]
    modalities: frozenset[str]
    requires: frozenset[str]
    description: str
    default: bool = True
    optional: frozenset[str] = frozenset()
    modality_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)

    def parameters(self) -> dict[str, Any]:
        """Tunable keyword parameters and their defaults (inputs such as ``labels`` excluded)."""
        return {
            p.name: p.default
            for p in inspect.signature(self.function).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.default is not inspect.Parameter.empty and p.name not in self.requires | self.optional
        }


ALL = frozenset({"image", "text", "tabular"})
REGISTRY: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec("exact_duplicate", detect_exact_duplicate, ALL, frozenset(), "identical content (bytes, normalised text or row values)"),
        DetectorSpec(
            "near_duplicate", detect_near_duplicate, ALL, frozenset({"knn"}),
            "embedding cosine fused with aligned-pixel evidence (images) or word overlap (texts), normalised against "
            "each item's background, above a threshold, grouped, one keeper per group",
            optional=frozenset({"hashes", "thumbnails", "vectors"}),
            # standardised table rows of one population are far more alike than image or text embeddings;
            # a text's fused similarity also counts its word overlap, which an edit lowers more than the cosine
            modality_defaults={"tabular": {"threshold": 0.999}, "text": {"threshold": 0.85}},
        ),
        DetectorSpec(
            "off_topic", detect_off_topic, ALL, frozenset({"vectors", "knn"}),
            "outside the dataset's domain: ensemble of kNN distance, single-linkage merge height, robust Mahalanobis and "
            "distance to the mean direction of the embeddings, plus length and ending evidence for texts",
            optional=frozenset({"labels"}),
        ),
        DetectorSpec(
            "label_error", detect_label_error, ALL, frozenset({"vectors", "labels", "knn"}),
            "given label unsupported by out-of-fold probe probabilities (confident learning; embeddings, plus pixels or "
            "words) and by the neighbours' labels",
            optional=frozenset({"pred_probs", "thumbnails"}),
        ),
        DetectorSpec(
            "outlier", detect_outlier, ALL, frozenset({"knn"}),
            "atypical for the dataset: kNN distance of the embeddings (plus robust Mahalanobis for tables), letter-trigram "
            "surprisal (texts) and orientation / polarity evidence from thumbnails (images)",
            optional=frozenset({"vectors", "labels", "thumbnails"}),
            # a table's encoded rows are the textbook case for a robust Gaussian; embeddings are multi-modal
            modality_defaults={"tabular": {"members": ("knn_distance", "mahalanobis")}},
        ),
    )
}


def default_detectors() -> list[str]:
    """Names of the detectors that run when none are selected."""
    return [name for name, spec in REGISTRY.items() if spec.default]


@dataclass
class DetectorRun:
    """Outcome of :func:`run_detectors`: results by detector, and why others did not run."""

    results: dict[str, Detection] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def validate_params(params: dict[str, dict[str, Any]], selected: Sequence[str] | None = None) -> None:
    """Reject unknown detector names (in ``params`` or the ``selected`` ones) or parameters,
    listing the valid ones."""
    for name in [*(selected or ()), *params]:
        if name not in REGISTRY:
            raise ConfigError(f"unknown detector {name!r}; valid: {', '.join(REGISTRY)}.")
    for name, values in params.items():
        valid = REGISTRY[name].parameters()
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ConfigError(f"detector {name} has no parameter {', '.join(unknown)}; valid: {', '.join(valid) or 'none'}.")


def run_detectors(
    items: pd.DataFrame, modality: str, inputs: dict[str, Any], params: dict[str, dict[str, Any]] | None = None,
    names: list[str] | None = None,
) -> DetectorRun:
    """Run the selected (default: all default) detectors applicable to ``modality``.

    ``inputs`` maps input names (``knn``, ``vectors``, ``labels``) to values row-aligned with ``items``;
    a detector gets the inputs it requires and the optional ones that are present.
    """
    params = params or {}
    validate_params(params)
    outcome = DetectorRun()
    for name in default_detectors() if names is None else names:
        if name not in REGISTRY:
            raise ConfigError(f"unknown detector {name!r}; valid: {', '.join(REGISTRY)}.")
        spec = REGISTRY[name]
        if modality not in spec.modalities:
            outcome.skipped[name] = f"does not apply to {modality} data"
            continue
        missing = sorted(r for r in spec.requires if inputs.get(r) is None)
        if missing:
            outcome.skipped[name] = f"missing inputs: {', '.join(missing)}"
            continue
        try:
            chosen = {**spec.modality_defaults.get(modality, {}), **params.get(name, {})}
            given = {r: inputs[r] for r in spec.requires | spec.optional if inputs.get(r) is not None}
            outcome.results[name] = spec.function(items, **given, **chosen)
        except Exception as exc:  # one broken detector must not sink the audit
            outcome.failed[name] = f"{type(exc).__name__}: {exc}"
    return outcome
