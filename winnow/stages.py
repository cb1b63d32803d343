"""The stages of one audit as plain functions; ``flows/audit.py`` wraps each in a Prefect task.

Each stage commits its own output to the store, so a killed run resumes from the last committed
stage: ingest is re-read and checked against what was stored, embedding skips every vector already
in the cache, and detection replaces the run's findings in one transaction.

Work that can run elsewhere is split from the store: a shard's measuring or embedding
(:func:`measure_items`, :func:`embed_items`) and each detector (:func:`run_job`) take plain inputs
and return plain outputs, so the flow can hand them to a Dask cluster while this process alone
reads and writes the DuckDB file (:class:`CacheFill` decides what each shard computes).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from checks import check_corrupt
from checks.image_quality import check_image_quality, measure_image
from checks.text_quality import check_text_quality, measure_text
from detectors import REGISTRY, DetectorRun, build_knn_graph, default_detectors, run_detectors
from detectors.drift import DEFAULT_MAX_SAMPLES, MIN_SAMPLES, detect_drift, drift_finding
from detectors.reference import (
    exact_reference_duplicates, mark_reference_pairs, mark_reference_relations, sample_positions, with_reference_neighbours,
)
from winnow.config import AuditConfig
from winnow.datasets import Dataset, ingest
from winnow.datasets.images import decode_image
from winnow.datasets.model import ITEM_COLUMNS
from winnow.embed import DEFAULT_MODELS, Embedder, EmbedResult, embed_payloads, get_embedder
from winnow.embed.thumbnails import decode_thumbnails, thumbnail
from winnow.errors import ConfigError, SourceError
from winnow.findings import ISSUE_TYPES, RUN_ITEM_ID, empty_findings, empty_pairs, validate_findings
from winnow.store import Store


def open_run(store: Store, config: AuditConfig, resume: str | None = None) -> tuple[str, AuditConfig]:
    """A new run for ``config``, or the stored config of run ``resume`` when resuming."""
    if resume:
        run = store.get_run(resume)
        return resume, AuditConfig.from_dict(run["config"])
    run_id = store.create_run(dataset=config.name or "", source=config.source, modality=config.modality or "", config=config.to_dict())
    return run_id, config


def ingest_stage(store: Store, run_id: str, config: AuditConfig) -> Dataset:
    """Read the source and commit its items; on resume, insist the source is unchanged."""
    dataset = ingest(
        config.source, modality=config.modality, text_col=config.text_col, path_col=config.path_col,
        label_col=config.label_col, id_col=config.id_col, name=config.name,
    )
    if "ingest" in store.stages(run_id):
        stored = store.load_items(run_id)
        same = list(stored["item_id"]) == list(dataset.items["item_id"]) and list(stored["content_hash"]) == list(dataset.items["content_hash"])
        if not same:
            raise SourceError(f"{config.source} changed since run {run_id} started; start a new audit instead of --resume.")
        dataset.items["error"] = stored["error"].to_numpy()  # keeps decode errors found while embedding
    else:
        store.set_run_modality(run_id, dataset.modality)
        store.save_items(run_id, dataset.items)
    return dataset


MEASURE_THREADS = 4


@dataclass(frozen=True)
class Measurer:
    """Per-item raw properties for a modality; ``kind`` versions the property cache."""

    kind: str
    measure: Callable[[Any], dict[str, Any]]


def measurer_for(modality: str) -> Measurer | None:
    """The property measurer of a modality (tables have none: GX checks read the rows directly)."""
    if modality == "image":
        return Measurer("image-v2", measure_image_file)
    if modality == "text":
        return Measurer("text-v1", measure_text)
    return None


def measure_image_file(path: str | Path) -> dict[str, Any]:
    """An image file's quality properties and its near-duplicate thumbnail, from one decode."""
    image = decode_image(path)
    return {**measure_image(image), "thumbnail": thumbnail(image)}


def _measure_one(measurer: Measurer, payload: Any) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return measurer.measure(payload), None
    except Exception as exc:  # a bad item must never stop the shard
        return None, f"cannot decode: {type(exc).__name__}: {exc}"


class CacheFill:
    """Fills one content-keyed cache — ``vectors`` for a model id, or ``properties`` for a measurer
    kind — shard by shard, computing each content at most once per run.

    :meth:`todo` returns the rows of a shard to compute: one per content that is neither in the
    cache nor handed out to an earlier shard of this run; the shard's other rows count as cache
    hits. :meth:`done` records what a shard computed and which contents failed, and :meth:`errors`
    maps the failures back to every item with that content. The counts and errors are therefore
    the same whether the shards run one after another or many at once on a cluster.

    ``contents``, when given, are every content hash the shards will hold: which of them the cache
    holds is then read in one query here, and :meth:`todo` asks the store nothing (a re-audit of
    100k items otherwise opens the file twice per shard just to learn that everything is cached).
    Whatever the run itself adds to the cache later was handed out by it, so one look suffices.
    """

    def __init__(self, store: Store, cache: str, key: str, contents: Sequence[str] | None = None) -> None:
        self.store, self.cache, self.key = store, cache, key
        self.known = store.cached_hashes(cache, key, list(contents)) if contents is not None else None
        self.handed_out: set[str] = set()
        self.failed: dict[str, str] = {}
        self.items = self.cached = self.computed = 0

    def todo(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``rows`` whose content must be computed (one row per content)."""
        hashes = rows["content_hash"].tolist()
        cached = self.known if self.known is not None else self.store.cached_hashes(self.cache, self.key, hashes)
        # set look-ups per row: Series.isin would copy the whole cache (100k hashes) for every shard
        known = np.fromiter((h in cached or h in self.handed_out for h in hashes), bool, len(hashes))
        self.items += len(rows)
        self.cached += int(known.sum())
        todo = rows[~known].drop_duplicates("content_hash")
        self.handed_out.update(todo["content_hash"])
        return todo

    def done(self, computed: int, failed: dict[str, str]) -> None:
        """Record a shard's outcome: how many contents it computed, and ``content_hash -> reason``
        for those it could not."""
        self.computed += computed
        self.failed.update(failed)

    def errors(self, items: pd.DataFrame) -> dict[str, str]:
        """``item_id -> reason`` for every item of ``items`` whose content failed."""
        failed = items[items["content_hash"].isin(self.failed)]
        return dict(zip(failed["item_id"], failed["content_hash"].map(self.failed)))

    def stats(self) -> dict[str, Any]:
        """``cached`` (items whose content was already cached), ``computed`` (contents computed) and
        ``hit_rate`` (the share of the items served by the cache)."""
        return {"cached": self.cached, "computed": self.computed, "hit_rate": round(self.cached / self.items, 4) if self.items else 0.0}


def measure_items(measurer: Measurer, payloads: list[Any]) -> list[tuple[dict[str, Any] | None, str | None]]:
    """``(properties, None)`` or ``(None, reason)`` per payload, decoding on a few threads."""
    with ThreadPoolExecutor(max_workers=MEASURE_THREADS) as pool:
        return list(pool.map(lambda p: _measure_one(measurer, p), payloads))


def save_measured(store: Store, measurer: Measurer, todo: pd.DataFrame, measured: list[tuple[dict[str, Any] | None, str | None]]) -> dict[str, str]:
    """Commit the properties measured for ``todo``'s contents; return ``content_hash -> reason``
    for those that could not be decoded."""
    store.save_properties(measurer.kind, {h: props for h, (props, _) in zip(todo["content_hash"], measured) if props is not None})
    return {h: error for h, (_, error) in zip(todo["content_hash"], measured) if error is not None}


def measure_shard(store: Store, dataset: Dataset, rows: pd.DataFrame, measurer: Measurer) -> dict[str, Any]:
    """Measure the rows whose content has no cached properties yet and commit them, in this process.

    Returns counts and the errors (``item_id -> reason``) of items that could not be decoded.
    """
    fill = CacheFill(store, "properties", measurer.kind)
    todo = fill.todo(rows)
    fill.done(len(todo), save_measured(store, measurer, todo, measure_items(measurer, payloads(dataset, todo))))
    return {"items": len(rows), "cached": fill.cached, "errors": fill.errors(rows)}


def load_properties(store: Store, items: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``item_id`` plus one column per measured property, for readable items with cached properties."""
    readable = items[items["error"].isna()]
    cache = store.cached_properties(kind, readable["content_hash"].tolist())
    rows = [{"item_id": item, **cache[h]} for item, h in zip(readable["item_id"], readable["content_hash"]) if h in cache]
    return pd.DataFrame(rows) if rows else pd.DataFrame({"item_id": pd.Series(dtype=object)})


def embedder_for(dataset: Dataset, config: AuditConfig) -> Embedder:
    """The embedder the config asks for, fitted to the data when it is the tabular encoder."""
    return get_embedder(config.model, dataset.modality, config.device, features=dataset.features)


def payloads(dataset: Dataset, rows: pd.DataFrame) -> list[Any]:
    """What the embedder reads for each row: a path, a text or a feature record."""
    if dataset.modality == "image":
        return rows["uri"].tolist()
    if dataset.modality == "text":
        return rows["text"].tolist()
    assert dataset.features is not None
    return dataset.features.iloc[rows.index.to_numpy()].to_dict(orient="records")


def shards(dataset: Dataset, shard_size: int) -> list[pd.DataFrame]:
    """Readable items split into shards of ``shard_size`` (index = position in ``dataset.items``)."""
    readable = dataset.readable
    return [readable.iloc[i : i + shard_size] for i in range(0, len(readable), shard_size)]


@dataclass(frozen=True)
class EmbedderRef:
    """How a task gets the run's embedder wherever it runs: rebuilt from its spec (``get_embedder``
    loads a model once per process and caches it), or carried along when it was fitted to this
    run's data (the tabular encoder, which is small). A model is never pickled with every shard."""

    model: str | None
    modality: str
    device: str | None
    fitted: Any = None

    @classmethod
    def of(cls, embedder: Embedder, config: AuditConfig, modality: str) -> "EmbedderRef":
        """The reference to ``embedder``, built for ``config`` and data of ``modality``."""
        fitted = (config.model or DEFAULT_MODELS[modality]) == "tabular"
        return cls(config.model, modality, config.device, embedder if fitted else None)

    def get(self) -> Embedder:
        """The embedder itself (loaded on first use in this process)."""
        return self.fitted if self.fitted is not None else get_embedder(self.model, self.modality, self.device)


def embed_items(embedder: EmbedderRef, payloads: list[Any], batch_size: int) -> EmbedResult:
    """Embed the payloads (paths, texts or feature records) of one shard; nothing is stored."""
    return embed_payloads(embedder.get(), payloads, batch_size=batch_size)


def save_embedded(store: Store, model_id: str, todo: pd.DataFrame, result: EmbedResult) -> dict[str, str]:
    """Commit the vectors computed for ``todo``'s contents; return ``content_hash -> reason`` for
    those that could not be embedded."""
    hashes = todo["content_hash"].to_numpy()
    store.save_vectors(model_id, hashes[result.ok].tolist(), result.vectors)
    return {hashes[i]: reason for i, reason in result.errors.items()}


def record_decode_errors(store: Store, run_id: str, dataset: Dataset, errors: dict[str, str]) -> None:
    """Items that failed to decode become unreadable items (and so ``corrupt`` findings)."""
    if errors:
        mask = dataset.items["item_id"].isin(errors)
        dataset.items.loc[mask, "error"] = dataset.items.loc[mask, "item_id"].map(errors)
        store.save_items(run_id, dataset.items)


def load_vectors(store: Store, items: pd.DataFrame, model_id: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The readable items that have a cached vector, and their vectors, row-aligned."""
    readable = items[items["error"].isna()]
    cache = store.cached_vectors(model_id, readable["content_hash"].tolist())
    embedded = readable[readable["content_hash"].isin(cache)].reset_index(drop=True)
    if embedded.empty:
        return embedded, np.zeros((0, 0), np.float32)
    return embedded, np.stack([cache[h] for h in embedded["content_hash"]])


def usable_labels(items: pd.DataFrame) -> np.ndarray | None:
    """The items' labels when at least two classes are present, else ``None`` (label detectors skip)."""
    labels = items["label"].to_numpy(dtype=object) if "label" in items else None
    if labels is None or pd.Series(labels).dropna().nunique() < 2:
        return None
    return labels


def user_probabilities(config: AuditConfig, items: pd.DataFrame, embedded: pd.DataFrame) -> np.ndarray | None:
    """The caller's out-of-fold probabilities (``--pred-probs``), row-aligned with the embedded items."""
    if config.pred_probs is None:
        return None
    probs = np.load(config.pred_probs)
    if probs.ndim != 2 or len(probs) != len(items):
        raise ConfigError(f"--pred-probs has shape {probs.shape}; it needs one row per item ({len(items)}) and one column per class.")
    return probs[embedded["ordinal"].to_numpy()]


def _measured(embedded: pd.DataFrame, properties: pd.DataFrame | None, column: str) -> pd.Series | None:
    """A measured property row-aligned with the embedded items, when every one of them has it."""
    if properties is None or column not in properties:
        return None
    values = embedded["item_id"].map(properties.drop_duplicates("item_id").set_index("item_id")[column])
    return None if values.isna().any() else values


def perceptual_hashes(embedded: pd.DataFrame, properties: pd.DataFrame | None) -> np.ndarray | None:
    """pHash hex strings row-aligned with the embedded items, when every one of them was measured."""
    hashes = _measured(embedded, properties, "phash")
    return None if hashes is None else hashes.to_numpy(dtype=object)


def image_thumbnails(embedded: pd.DataFrame, properties: pd.DataFrame | None) -> np.ndarray | None:
    """``(n, side, side)`` greyscale thumbnails row-aligned with the embedded items, when every one
    of them was measured with one (properties cached before thumbnails existed have none)."""
    values = _measured(embedded, properties, "thumbnail")
    return None if values is None or values.empty else decode_thumbnails(values.tolist())


def quality_checks(modality: str, properties: pd.DataFrame | None) -> list[pd.DataFrame]:
    """``low_quality`` findings from the measured properties of images or texts."""
    if properties is None or properties.empty:
        return []
    if modality == "image":
        return [check_image_quality(properties)]
    if modality == "text":
        return [check_text_quality(properties)]
    return []


def table_checks(dataset: Dataset, config: AuditConfig) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Run the Great Expectations suite given with ``--suite`` on a table: ``(findings, check_results)``."""
    if config.suite is None:
        return None
    if dataset.table is None:
        raise ConfigError(f"--suite checks tables, but {config.source} was read as {dataset.modality} data.")
    from checks.tabular import load_suite, run_suite, schema_finding

    suite = load_suite(Path(config.suite))
    findings, check_results = run_suite(dataset.table, suite, id_col=config.id_col, item_ids=dataset.items["item_id"].tolist())
    return pd.concat([findings, schema_finding(check_results)], ignore_index=True), check_results


# -- incremental audits: the batch against a reference corpus -------------------------------------

REFERENCE_SAMPLE = 5_000
"""Reference items scored together with the batch by the density-based detectors (off-topic,
outliers, label errors): all of the reference up to this size, a fixed random sample beyond it."""
REFERENCE_CHUNK = 20_000
"""Reference vectors read and searched at a time (20,000 × 1,280 float32 ≈ 100 MB)."""


@dataclass
class Reference:
    """The corpus a batch is audited against, for the run's embedding model.

    ``corpus``: every readable reference item, first seen first (``item_id, content_hash, label,
    ordinal, run_id``; see :meth:`Store.reference_corpus`) — metadata only. ``searchable``: the
    first item of each content that has a cached vector for the model; its row positions are what
    the neighbour search returns. ``sample`` and ``sample_vectors``: at most
    :data:`REFERENCE_SAMPLE` rows of ``searchable`` (with their ``text``, for a text dataset) and
    their vectors.
    """

    run: str
    corpus: pd.DataFrame
    searchable: pd.DataFrame
    sample: pd.DataFrame
    sample_vectors: np.ndarray

    def origin(self) -> dict[str, str]:
        """``item_id -> run_id`` of every reference item."""
        return dict(zip(self.corpus["item_id"], self.corpus["run_id"]))

    def chunks(self, size: int = REFERENCE_CHUNK) -> list[tuple[int, list[str]]]:
        """``(offset, content hashes)`` of consecutive slices of ``searchable``, ``size`` at most."""
        hashes = self.searchable["content_hash"].tolist()
        return [(start, hashes[start : start + size]) for start in range(0, len(hashes), size)]

    def summary(self) -> dict[str, Any]:
        """What the batch was compared with, for the run summary and the ``reference`` stage."""
        return {
            "run": self.run, "runs": sorted(set(self.corpus["run_id"])), "corpus_items": len(self.corpus),
            "searchable": len(self.searchable), "sampled": len(self.sample),
        }


@dataclass
class ReferenceHits:
    """Each embedded batch item's most similar reference contents — ``indices`` are positions in
    :attr:`Reference.searchable` (``-1`` none), best first — and the measured properties
    (``item_id`` + columns) of the reference items they touch, for perceptual hashes and thumbnails,
    and of the reference sample, for the detectors that read thumbnails (the outliers' orientation,
    the label errors' pixel probe)."""

    similarities: np.ndarray
    indices: np.ndarray
    properties: pd.DataFrame | None = None
    sample_properties: pd.DataFrame | None = None


def load_reference(store: Store, run_id: str, config: AuditConfig, model_id: str) -> Reference | None:
    """The reference corpus of run ``run_id`` (``None`` when the dataset has no reference run yet).

    Reads the corpus's metadata, which of its contents have vectors for ``model_id``, and the
    vectors of the sample only; the rest of the vectors are read chunk by chunk by the search
    (:func:`reference_vectors`). Records the ``reference`` stage, which later runs follow to build
    their own corpus from this one.
    """
    reference = reference_run(store, run_id, config)
    if reference is None:
        return None
    corpus = store.reference_corpus(run_id, reference)
    embedded = store.cached_hashes("vectors", model_id, corpus["content_hash"].tolist())
    searchable = corpus[corpus["content_hash"].isin(embedded)].drop_duplicates("content_hash").reset_index(drop=True)
    sample = searchable.iloc[sample_positions(len(searchable), REFERENCE_SAMPLE)].reset_index(drop=True)
    sample = sample.assign(text=store.item_texts(sample))  # the text detectors' members read them (texts only)
    loaded = Reference(reference, corpus, searchable, sample, reference_vectors(store, model_id, sample["content_hash"].tolist()))
    store.mark_stage(run_id, Store.REFERENCE_STAGE, loaded.summary())
    return loaded


def reference_vectors(store: Store, model_id: str, hashes: list[str]) -> np.ndarray:
    """The cached vectors of these contents, in order (every one must be cached)."""
    cache = store.cached_vectors(model_id, hashes)
    return np.stack([cache[h] for h in hashes]) if hashes else np.zeros((0, 0), np.float32)


def reference_hits(store: Store, reference: Reference, similarities: np.ndarray, indices: np.ndarray, measurer: Measurer | None) -> ReferenceHits:
    """The merged search results with the measured properties of the reference items they touch
    and of the reference sample."""
    if measurer is None:
        return ReferenceHits(similarities, indices)
    touched = reference.searchable.iloc[np.unique(indices[indices >= 0])]
    return ReferenceHits(similarities, indices, load_properties(store, touched.assign(error=None), measurer.kind),
                         load_properties(store, reference.sample.assign(error=None), measurer.kind))


@dataclass
class Detections:
    """All findings and pairs of a run, plus what did not run."""

    findings: pd.DataFrame
    pairs: pd.DataFrame
    skipped: dict[str, str]
    failed: dict[str, str]
    knn_method: str
    check_results: pd.DataFrame | None = None
    reference: dict[str, Any] | None = None
    """For an incremental run: what the batch was compared with (:meth:`Reference.summary`) and
    ``duplicates_of_reference``, the flagged exact and near-duplicates of reference items per type."""
    drift: dict[str, Any] | None = None
    """The drift test's summary when it ran (:attr:`DriftOutcome.summary`)."""

    FRAMES = ("findings", "pairs", "check_results")

    def __getstate__(self) -> dict[str, Any]:
        """Pickled — as Prefect persists a cached detection — with its frames as zstd-compressed
        Arrow IPC streams: a 100k-item run's 700k findings take about 20 MB instead of 250 MB, and
        are written and read several times faster."""
        return {k: _CompactFrame.of(v) if k in self.FRAMES and _CompactFrame.fits(v) else v for k, v in vars(self).items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update({k: v.frame() if isinstance(v, _CompactFrame) else v for k, v in state.items()})


@dataclass(frozen=True)
class _CompactFrame:
    """A DataFrame as a zstd-compressed Arrow IPC stream. pandas' schema metadata restores its
    index and dtypes, except that Arrow reads text back as pandas' string dtype: columns that held
    Python objects (``objects``) are turned back into them, with ``None`` where a value is missing."""

    ipc: bytes
    objects: tuple[str, ...]

    @staticmethod
    def fits(frame: pd.DataFrame | None) -> bool:
        """Whether ``frame`` comes back exactly: its Python-object columns hold only text and
        missing values (a column mixing numbers and text is pickled as it is instead)."""
        if frame is None:
            return False
        objects = [frame[c] for c in frame.columns if frame[c].dtype == object]
        return all(pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty") for values in objects)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "_CompactFrame":
        import pyarrow as pa

        table = pa.Table.from_pandas(frame)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
            writer.write_table(table)
        return cls(sink.getvalue().to_pybytes(), tuple(str(c) for c in frame.columns if frame[c].dtype == object))

    def frame(self) -> pd.DataFrame:
        import pyarrow as pa

        frame = pa.ipc.open_stream(self.ipc).read_all().to_pandas()
        for column in self.objects:
            frame[column] = pd.Series(frame[column].to_numpy(dtype=object, na_value=None), index=frame.index, dtype=object)
        return frame


@dataclass
class DetectorJob:
    """One call of :func:`detectors.run_detectors`: the detectors, the items they score and the
    shared inputs (kNN graph, vectors, labels …) row-aligned with those items."""

    names: list[str]
    items: pd.DataFrame
    modality: str
    inputs: dict[str, Any]
    params: dict[str, dict[str, Any]]


def run_job(job: DetectorJob) -> DetectorRun:
    """Run one job's detectors: a task of its own, so detectors can run side by side on workers."""
    return run_detectors(job.items, job.modality, job.inputs, job.params, names=job.names)


@dataclass
class DetectionPlan:
    """A run's detector jobs, and what :func:`assemble` needs to turn their results into findings."""

    jobs: list[DetectorJob]
    items: pd.DataFrame
    modality: str
    knn_method: str
    properties: pd.DataFrame | None = None
    rule_checks: tuple[pd.DataFrame, pd.DataFrame] | None = None
    reference: Reference | None = None


def plan_detection(
    items: pd.DataFrame, embedded: pd.DataFrame, vectors: np.ndarray, modality: str, config: AuditConfig, device: str,
    properties: pd.DataFrame | None = None, rule_checks: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    reference: Reference | None = None, hits: ReferenceHits | None = None,
) -> DetectionPlan:
    """Build the kNN graph once and one job per selected detector.

    Detectors that need no inputs (exact duplicates) form one job over every readable item; each
    other detector gets a job over the embedded items with the shared graph. With a ``reference``
    and its ``hits`` the jobs see the reference too (see :func:`_reference_jobs`). ``properties``
    (``item_id`` + measured columns) feeds the quality checks and, for images, the perceptual
    hashes of the near-duplicate detector; ``rule_checks`` are the findings and check results of a
    table's suite (see :func:`table_checks`).
    """
    names = config.detectors or default_detectors()
    readable = items[items["error"].isna()].reset_index(drop=True)
    jobs = [DetectorJob([n for n in names if not REGISTRY[n].requires], readable, modality, {}, config.params)]
    graph_names = [n for n in names if REGISTRY[n].requires]
    knn = build_knn_graph(vectors, k=config.k, device=device) if len(embedded) else None
    inputs = {
        "knn": knn, "vectors": vectors if len(embedded) else None, "labels": usable_labels(embedded),
        "hashes": perceptual_hashes(embedded, properties), "pred_probs": user_probabilities(config, items, embedded),
        "thumbnails": image_thumbnails(embedded, properties),
    }
    plan = DetectionPlan(jobs, items, modality, knn.method if knn is not None else "none", properties, rule_checks, reference)
    if knn is None or reference is None or hits is None:
        jobs += [DetectorJob([n], embedded, modality, inputs, config.params) for n in graph_names]
        return plan
    jobs += _reference_jobs(graph_names, embedded, vectors, modality, inputs, config, device, properties, reference, hits)
    plan.knn_method = f"{knn.method}+reference"
    return plan


def _reference_jobs(
    names: list[str], embedded: pd.DataFrame, vectors: np.ndarray, modality: str, inputs: dict[str, Any], config: AuditConfig,
    device: str, properties: pd.DataFrame | None, reference: Reference, hits: ReferenceHits,
) -> list[DetectorJob]:
    """Jobs that score the batch against the reference.

    ``near_duplicate`` runs on the batch plus the reference items among its neighbours, with each
    batch item's neighbours drawn from the batch and the whole reference (:func:`with_reference_neighbours`):
    a copy of a reference item joins its group, and the reference item, seen first, is kept.
    The density-based detectors (``off_topic``, ``outlier``, ``label_error``) run on the batch plus
    a sample of the reference (all of it up to :data:`REFERENCE_SAMPLE` items), with one kNN graph
    over both: neighbours come from reference and batch alike, and each detector's run-level
    threshold comes mostly from the reference, so a batch that is all off-topic still stands out.
    Only the batch's findings are kept (:func:`assemble`). ``label_error`` with the caller's
    ``pred_probs`` (one row per batch item) scores the batch alone.
    """
    touching, touched = with_reference_neighbours(inputs["knn"], hits.similarities, hits.indices, config.k)
    near_items = pd.concat([embedded, _as_items(reference.searchable.iloc[touched], modality)], ignore_index=True)
    near_properties = pd.concat([properties, hits.properties], ignore_index=True) if properties is not None and hits.properties is not None else None
    near_inputs = {"knn": touching, "hashes": perceptual_hashes(near_items, near_properties),
                   "thumbnails": image_thumbnails(near_items, near_properties)}
    pool_items = pd.concat([embedded, _as_items(reference.sample, modality)], ignore_index=True)
    pool_vectors = np.vstack([vectors, reference.sample_vectors]) if len(reference.sample) else vectors
    pool_knn = build_knn_graph(pool_vectors, k=config.k, device=device) if len(reference.sample) else inputs["knn"]
    pool_properties = pd.concat([properties, hits.sample_properties], ignore_index=True) if properties is not None and hits.sample_properties is not None else None
    pool_inputs = {"knn": pool_knn, "vectors": pool_vectors, "labels": usable_labels(pool_items), "thumbnails": image_thumbnails(pool_items, pool_properties)}
    jobs = []
    for name in names:
        if name == "near_duplicate":
            jobs.append(DetectorJob([name], near_items, modality, near_inputs, config.params))
        elif name == "label_error" and inputs["pred_probs"] is not None:
            jobs.append(DetectorJob([name], embedded, modality, inputs, config.params))
        else:
            jobs.append(DetectorJob([name], pool_items, modality, pool_inputs, config.params))
    return jobs


def _as_items(reference_rows: pd.DataFrame, modality: str) -> pd.DataFrame:
    """Reference items as rows of an items frame, ordered before every batch item (negative
    ordinals, first seen first), so a duplicate group keeps its reference member."""
    frame = pd.DataFrame({column: reference_rows[column].to_numpy() if column in reference_rows else None for column in ITEM_COLUMNS})
    frame["ordinal"] = np.arange(len(frame)) - len(frame)
    frame["modality"] = modality
    return frame


def assemble(plan: DetectionPlan, outcomes: Sequence[DetectorRun]) -> Detections:
    """The run's findings and pairs from the checks and the jobs' results (in job order); for an
    incremental run, only the batch's items are kept and relations to reference items say so."""
    results = {name: result for outcome in outcomes for name, result in outcome.results.items()}
    checks = [check_corrupt(plan.items)] + quality_checks(plan.modality, plan.properties) + ([plan.rule_checks[0]] if plan.rule_checks else [])
    findings = pd.concat(checks + [r.findings for r in results.values()], ignore_index=True)
    pair_frames = [r.pairs for r in results.values() if len(r.pairs)]
    pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else empty_pairs()
    summary = None
    if plan.reference is not None:
        findings, pairs, summary = _against_reference(findings, pairs, plan.items, plan.reference, exact="exact_duplicate" in results)
    skipped = {k: v for o in outcomes for k, v in o.skipped.items()}
    failed = {k: v for o in outcomes for k, v in o.failed.items()}
    check_results = plan.rule_checks[1] if plan.rule_checks else None
    return Detections(validate_findings(findings), pairs, skipped, failed, plan.knn_method, check_results, summary)


def _against_reference(
    findings: pd.DataFrame, pairs: pd.DataFrame, items: pd.DataFrame, reference: Reference, *, exact: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Keep the batch's findings and pairs, make copies of reference content exact duplicates of
    the reference item (when the exact-duplicate detector ran), and mark relations to reference items."""
    batch = set(items["item_id"]) | {RUN_ITEM_ID}
    findings = findings[findings["item_id"].isin(batch)]
    pairs = pairs[pairs["item_a"].isin(batch) | pairs["item_b"].isin(batch)]
    if exact:
        copies = exact_reference_duplicates(items[items["error"].isna()], reference.corpus)
        copied = set(copies.findings["item_id"])
        findings = pd.concat([findings[~((findings["issue_type"] == "exact_duplicate") & findings["item_id"].isin(copied))], copies.findings], ignore_index=True)
        own = (pairs["method"] == "content_hash") & (pairs["item_a"].isin(copied) | pairs["item_b"].isin(copied))
        pairs = pd.concat([pairs[~own], copies.pairs], ignore_index=True)
    origin = reference.origin()
    findings = mark_reference_relations(findings.reset_index(drop=True), origin)
    pairs = mark_reference_pairs(pairs.reset_index(drop=True), set(origin))
    copies = findings["flagged"] & findings["issue_type"].isin(["exact_duplicate", "near_duplicate"]) & findings["related_item_id"].isin(list(origin))
    per_type = findings[copies].groupby("issue_type").size()
    return findings, pairs, {**reference.summary(), "duplicates_of_reference": {str(t): int(n) for t, n in per_type.items()}}


# -- what detection is computed from: the key of its cached result -------------------------------

DETECTION_CODE = ("detectors", "checks", "winnow.stages", "winnow.findings", "winnow.robust", "winnow.embed.thumbnails")
"""Packages and modules whose source decides the findings, given the inputs (the tabular suite's
code is keyed by its own cached task)."""
DETECTION_LIBRARIES = ("numpy", "pandas", "scipy", "scikit-learn", "faiss-cpu", "torch", "imagehash", "datasketch")
NOT_DETECTION_OPTIONS = ("source", "name", "device", "task_runner", "dask_address", "shard_size", "batch_size")
"""Audit options that never change a finding by themselves: where the data was read from (its
content is in the items), the names, how the work is spread, and the requested device (the
resolved one is part of the key)."""


@lru_cache(maxsize=1)
def detection_code_version() -> str:
    """A digest of the source of every module in :data:`DETECTION_CODE` and of the versions of the
    numeric libraries they call: an edit to a detector, a check or their wiring gives a new version,
    so a cached detection is never served to other code."""
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.blake2b(digest_size=16)
    for name in DETECTION_CODE:
        module = import_module(name)
        files = sorted(Path(module.__file__).parent.rglob("*.py")) if hasattr(module, "__path__") else [Path(module.__file__)]
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for library in DETECTION_LIBRARIES:
        try:
            digest.update(f"{library}={version(library)}".encode())
        except PackageNotFoundError:
            digest.update(f"{library}=none".encode())
    return digest.hexdigest()


@dataclass
class DetectionInputs:
    """Everything a run's detection reads, and :attr:`key`, their identity.

    ``items`` is the run's items frame (unreadable items included: they become ``corrupt``
    findings); ``embedded`` and ``vectors`` the readable items with a cached vector, row-aligned
    (:func:`load_vectors`); ``properties`` the measured properties (:func:`load_properties`);
    ``rule_checks`` the table suite's findings and results (:func:`table_checks`).
    """

    items: pd.DataFrame
    embedded: pd.DataFrame
    vectors: np.ndarray
    properties: pd.DataFrame | None
    modality: str
    config: AuditConfig
    device: str
    rule_checks: tuple[pd.DataFrame, pd.DataFrame] | None = None

    @cached_property
    def key(self) -> str | None:
        """A digest of every input — the items' columns, the vectors' bytes, the properties, the
        options that change findings, the ``--pred-probs`` file, the suite's results, the device —
        and of :func:`detection_code_version`: two runs with the same key get the same findings,
        so the second may reuse the first's. ``None`` for a run against a reference (``--reference``):
        its findings also depend on a corpus that grows with every run, so it is never reused."""
        if self.config.reference is not None:
            return None
        digest = hashlib.blake2b(digest_size=20)
        frames = [self.items[list(ITEM_COLUMNS)], self.embedded[["item_id"]]]
        if self.properties is not None:
            frames.append(self.properties)
        if self.rule_checks is not None:
            frames.extend(self.rule_checks)
        for frame in frames:
            digest.update("\x1f".join(map(str, frame.columns)).encode())
            digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
            digest.update(frame.isna().to_numpy().tobytes())
        digest.update(np.ascontiguousarray(self.vectors, dtype=np.float32).tobytes())
        options = {k: v for k, v in self.config.to_dict().items() if k not in NOT_DETECTION_OPTIONS}
        digest.update(json.dumps([options, self.modality, self.device, detection_code_version()], sort_keys=True, default=str).encode())
        if self.config.pred_probs is not None:
            digest.update(Path(self.config.pred_probs).read_bytes())
        return digest.hexdigest()


def detect_stage(
    items: pd.DataFrame, embedded: pd.DataFrame, vectors: np.ndarray, modality: str, config: AuditConfig, device: str,
    properties: pd.DataFrame | None = None, rule_checks: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> Detections:
    """Plan, run every job in this process and assemble: the whole detection of a stand-alone batch
    (the flow runs the jobs as tasks instead; see :func:`plan_detection`)."""
    plan = plan_detection(items, embedded, vectors, modality, config, device, properties, rule_checks)
    return assemble(plan, [run_job(job) for job in plan.jobs])


def summarize(store: Store, run_id: str, top: int = 5) -> dict[str, Any]:
    """Counts per issue type and the top flagged items, for the CLI, the artifact and ``runs``."""
    counts = store.issue_counts(run_id)
    flagged = store.findings(run_id, flagged_only=True)
    order = {t: i for i, t in enumerate(ISSUE_TYPES)}
    flagged = flagged.assign(_o=flagged["issue_type"].map(order)).sort_values(["_o", "score"], ascending=[True, False])
    top_items = flagged.groupby("issue_type", sort=False).head(top)[["issue_type", "item_id", "score", "reason"]]
    items = store.stages(run_id).get("ingest", {}).get("items")  # recorded with the items: no need to read 100k rows to count them
    return {
        "run_id": run_id,
        "items": int(items if items is not None else len(store.load_items(run_id))),
        "flagged": {r.issue_type: int(r.flagged) for r in counts.itertuples()},
        "scored": {r.issue_type: int(r.scored) for r in counts.itertuples()},
        "pairs": int(len(store.pairs(run_id))),
        "top": top_items.to_dict(orient="records"),
        "failed_checks": store.check_results(run_id, failed_only=True)[["check_name", "observed"]].to_dict(orient="records"),
    }


# -- drift against a reference run (run level) ---------------------------------------------------

PREVIOUS_RUN = "previous"


@dataclass
class DriftOutcome:
    """The run-level ``drift`` finding (empty when not tested), why it was skipped, and a summary."""

    findings: pd.DataFrame
    skipped: str | None = None
    summary: dict[str, Any] | None = None


def check_reference(store: Store, config: AuditConfig) -> None:
    """Fail before any work when ``--reference`` names a run that does not exist or did not complete."""
    if config.reference in (None, PREVIOUS_RUN):
        return
    status = store.get_run(config.reference)["status"]
    if status != "completed":
        raise ConfigError(f"--reference {config.reference} is {status}; pick a completed run (`winnow runs` lists them) or --reference previous.")


def reference_run(store: Store, run_id: str, config: AuditConfig) -> str | None:
    """The run to compare with: ``config.reference``, or for ``previous`` the dataset's newest
    completed run that started before ``run_id`` (stable when the run is resumed later)."""
    if config.reference != PREVIOUS_RUN:
        return config.reference
    runs = store.list_runs(config.name)
    started = runs.loc[runs["run_id"] == run_id, "started"].iloc[0]
    earlier = runs[(runs["status"] == "completed") & (runs["started"] < started)]
    return str(earlier.iloc[0]["run_id"]) if len(earlier) else None


def drift_stage(store: Store, run_id: str, config: AuditConfig, embedded: pd.DataFrame, vectors: np.ndarray, model_id: str) -> DriftOutcome:
    """Test this run's embedded items against the reference run's, with the same model's cached vectors.

    Skips (with the reason) when there is no reference, it was embedded with another model, or
    either side has too few embedded items; see :mod:`detectors.drift` for the tests. Only the
    reference vectors the tests use are read (a sample of at most ``DEFAULT_MAX_SAMPLES``), so a
    large reference costs no memory; its labels are all counted.
    """
    reference = reference_run(store, run_id, config)
    if reference is None:
        return DriftOutcome(empty_findings(), f"dataset {config.name!r} has no earlier completed run to compare with")
    reference_model = store.stages(reference).get("embed", {}).get("model_id")
    if reference_model != model_id:
        return DriftOutcome(
            empty_findings(),
            f"reference run {reference} was embedded with {reference_model}, this run with {model_id}; "
            f"re-audit the reference with --model {model_id} to compare them",
        )
    ref_items = store.load_items(reference)
    ref_items = ref_items[ref_items["error"].isna()].reset_index(drop=True)
    sample, ref_vectors = load_vectors(store, ref_items.iloc[sample_positions(len(ref_items), DEFAULT_MAX_SAMPLES)], model_id)
    if min(len(sample), len(embedded)) < MIN_SAMPLES:
        return DriftOutcome(empty_findings(), f"drift needs {MIN_SAMPLES} embedded items on each side; reference {reference} has {len(sample)}, this run {len(embedded)}")
    result = detect_drift(ref_vectors, vectors, reference_labels=ref_items["label"].to_numpy(), batch_labels=embedded["label"].to_numpy())
    summary = {"reference": reference, "drifted": result.drifted, "score": result.score, "reason": result.reason, **result.detail()}
    return DriftOutcome(drift_finding(result), None, summary)


def add_drift(detections: Detections, drift: DriftOutcome) -> Detections:
    """``detections`` with the drift finding appended and its summary kept, or its skip reason recorded."""
    if drift.skipped:
        detections.skipped["drift"] = drift.skipped
    detections.drift = drift.summary or None
    if len(drift.findings):
        detections.findings = validate_findings(pd.concat([detections.findings, drift.findings], ignore_index=True))
    return detections


# -- blocking checks ---------------------------------------------------------------------------------

FAILED_CHECKS = "failed-checks"
"""Run status of an audit that finished, findings stored, but whose blocking checks failed."""


def blocking_failures(config: AuditConfig, detections: Detections) -> list[str]:
    """The failed expectations that fail the run: every failed expectation of the suite when
    ``config.blocking`` is set, none otherwise."""
    if not config.blocking or detections.check_results is None:
        return []
    results = detections.check_results
    return results.loc[~results["success"].astype(bool), "check_name"].astype(str).tolist()
