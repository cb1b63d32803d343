"""``winnow filter`` configuration: which stages run, in which order, and their thresholds.

A YAML file (read with ``yaml.safe_load``) overrides the defaults below; every key is checked, and
an unknown stage, an unknown option or a value of the wrong kind is a :class:`ConfigError` that
names the key, what was found and what is allowed. Example::

    stages: [exact, minhash, quality]    # run in this order; semantic and anomaly are off by default
    minhash: {shingle_size: 2, num_perm: 128, threshold: 0.5}
    quality: {min_chars: 50, max_symbol_ratio: 0.3}
    anomaly: {reference: good_docs.jsonl, k: 5, quantile: 0.99}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from winnow.errors import ConfigError

STAGES = ("exact", "minhash", "semantic", "quality", "anomaly")
DEFAULT_STAGES = ("exact", "minhash", "quality")
EMBEDDING_STAGES = frozenset({"semantic", "anomaly"})
INDEX_STAGES = frozenset({"exact", "minhash"})
"""Stages whose decisions depend on every earlier document, across runs: they keep a persisted index."""


@dataclass(frozen=True)
class ExactOptions:
    """Exact dedup: a document whose normalised text (NFKC, case-folded, whitespace collapsed:
    ``winnow.datasets.hashing.hash_text``) was seen before is removed. ``normalize``: write kept
    documents as Unicode NFC with runs of spaces collapsed and lines stripped."""

    normalize: bool = True


@dataclass(frozen=True)
class MinHashOptions:
    """Fuzzy dedup with MinHash-LSH over word shingles of the normalised text.

    ``threshold`` is the Jaccard similarity at which a document counts as a near-copy of an earlier
    kept one (candidates are verified on their signatures); ``bands`` × ``rows`` must not exceed
    ``num_perm`` and default to datasketch's optimum for the threshold."""

    shingle_size: int = 2
    num_perm: int = 128
    threshold: float = 0.5
    bands: int | None = None
    rows: int | None = None
    seed: int = 1


@dataclass(frozen=True)
class SemanticOptions:
    """SemDeDup: embed, cluster with faiss k-means, and inside each cluster remove documents whose
    cosine similarity to an earlier kept one is at least ``threshold``. ``clusters`` defaults to
    about sqrt(n / 10)."""

    model: str = "minilm"
    threshold: float = 0.95
    clusters: int | None = None
    batch_size: int = 64
    device: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class QualityOptions:
    """The text quality rules of ``checks.text_quality.check_text_quality``: ``params`` are its
    keyword arguments (``min_chars``, ``max_symbol_ratio``, ``max_top_2gram_fraction``, …; null
    turns a rule off). Relative (``*_z``) rules compare a document with the rest of its shard."""

    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnomalyOptions:
    """Anomaly score against a reference set of good documents (a JSONL / Parquet file with the
    same text key, or a .txt file with one document per line): the mean cosine distance from a
    document's embedding to its ``k`` nearest reference documents. Documents at or above
    ``threshold`` are removed; without one, the threshold is the ``quantile`` of the reference
    documents' own leave-one-out distances."""

    reference: str | None = None
    k: int = 5
    threshold: float | None = None
    quantile: float = 0.99
    model: str = "minilm"
    batch_size: int = 64
    device: str | None = None


@dataclass(frozen=True)
class FilterConfig:
    """Everything a filter run needs; stored with the run so a killed run resumes with it."""

    inputs: str
    out: str
    text_key: str = "text"
    id_key: str | None = None
    name: str | None = None
    stages: tuple[str, ...] = DEFAULT_STAGES
    exact: ExactOptions = field(default_factory=ExactOptions)
    minhash: MinHashOptions = field(default_factory=MinHashOptions)
    semantic: SemanticOptions = field(default_factory=SemanticOptions)
    quality: QualityOptions = field(default_factory=QualityOptions)
    anomaly: AnomalyOptions = field(default_factory=AnomalyOptions)
    workers: int = 1
    """Shards processed at once; above 1 the flow uses Prefect's Dask task runner (one process per worker)."""
    batch_size: int = 2048
    """Documents per batch inside a shard (hashing, MinHash, quality measures)."""

    @property
    def dataset(self) -> str:
        return self.name or Path(self.out).resolve().name

    @property
    def needs_embeddings(self) -> bool:
        return any(stage in EMBEDDING_STAGES for stage in self.stages)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = list(self.stages)
        return data

    def fingerprint(self) -> str:
        """What makes two runs the same run: inputs, keys and every stage option (not workers)."""
        data = {k: v for k, v in self.to_dict().items() if k not in ("workers", "batch_size", "name")}
        return hashlib.blake2b(json.dumps(data, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilterConfig:
        """Rebuild a stored configuration (see :meth:`to_dict`)."""
        options = {name: kind(**data[name]) for name, kind in _SECTIONS.items() if name in data}
        rest = {k: v for k, v in data.items() if k not in _SECTIONS}
        rest["stages"] = tuple(rest.get("stages", DEFAULT_STAGES))
        return cls(**rest, **options)


_SECTIONS: dict[str, type] = {
    "exact": ExactOptions, "minhash": MinHashOptions, "semantic": SemanticOptions, "quality": QualityOptions,
    "anomaly": AnomalyOptions,
}


def load_filter_config(path: str | Path | None, **cli: Any) -> FilterConfig:
    """The configuration from the YAML file at ``path`` (or defaults) with the command line's
    ``inputs``, ``out``, ``text_key``, ``id_key``, ``name`` and ``workers`` on top (None = not given)."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml(Path(path))
    known = {"stages", "workers", "batch_size", *_SECTIONS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid top-level keys: {sorted(known)}.")
    values: dict[str, Any] = {k: v for k, v in cli.items() if v is not None}
    if "stages" in raw:
        values["stages"] = _stages(raw["stages"], path)
    for key in ("workers", "batch_size"):
        if key in raw and key not in values:
            values[key] = raw[key]
    for name, kind in _SECTIONS.items():
        section = raw.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: '{name}' must be a mapping of options, got {section!r}.")
        values[name] = _section(kind, name, section, path)
    for key in ("out",):
        if key in values:
            values[key] = str(Path(values[key]).expanduser().resolve())
    anomaly = values["anomaly"]
    if anomaly.reference is not None:
        values["anomaly"] = replace(anomaly, reference=str(Path(anomaly.reference).expanduser().resolve()))
    config = FilterConfig(**values)
    validate(config)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"--config {path} does not exist; write a YAML file (see docs/filter.md) or leave --config out.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must be a YAML mapping (stages:, minhash:, …), got {type(data).__name__}.")
    return data


def _stages(value: Any, path: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigError(f"{path}: 'stages' must be a list of stage names, e.g. [exact, minhash, quality]; got {value!r}.")
    bad = [s for s in value if s not in STAGES]
    if bad:
        raise ConfigError(f"{path}: unknown stage(s) {bad}; valid stages: {list(STAGES)}.")
    if len(set(value)) != len(value):
        raise ConfigError(f"{path}: a stage is listed twice in {value}; list each stage once, in the order to run them.")
    return tuple(value)


def _section(kind: type, name: str, section: dict[str, Any], path: Any) -> Any:
    if kind is QualityOptions:
        return QualityOptions(params=dict(section))
    valid = {f.name: f for f in fields(kind)}
    unknown = sorted(set(section) - set(valid))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {unknown} in '{name}'; valid: {sorted(valid)}.")
    return kind(**section)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _number(value: Any, integer: bool = False) -> bool:
    kinds = (int,) if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool)


def validate(config: FilterConfig) -> None:
    """Check every option's kind and range; raise :class:`ConfigError` naming the first bad one."""
    _check(_number(config.workers, True) and config.workers >= 1, f"workers must be a whole number >= 1, got {config.workers!r}.")
    _check(_number(config.batch_size, True) and config.batch_size >= 1, f"batch_size must be a whole number >= 1, got {config.batch_size!r}.")
    _check(bool(config.stages), "stages is empty; list at least one of " + ", ".join(STAGES) + ".")
    _check(isinstance(config.exact.normalize, bool), f"exact.normalize must be true or false, got {config.exact.normalize!r}.")
    m = config.minhash
    for key in ("shingle_size", "num_perm", "seed"):
        _check(_number(getattr(m, key), True) and getattr(m, key) >= (0 if key == "seed" else 1),
               f"minhash.{key} must be a positive whole number, got {getattr(m, key)!r}.")
    _check(m.num_perm >= 2, f"minhash.num_perm must be at least 2, got {m.num_perm}.")
    _check(_number(m.threshold) and 0 < m.threshold <= 1, f"minhash.threshold must be in (0, 1], got {m.threshold!r}.")
    if (m.bands is None) != (m.rows is None):
        raise ConfigError("minhash.bands and minhash.rows go together: give both, or neither (then they follow the threshold).")
    if m.bands is not None:
        _check(_number(m.bands, True) and _number(m.rows, True) and m.bands >= 2 and m.rows >= 1,
               f"minhash.bands must be >= 2 and minhash.rows >= 1, got {m.bands!r} and {m.rows!r}.")
        _check(m.bands * m.rows <= m.num_perm,
               f"minhash.bands × rows = {m.bands * m.rows} exceeds num_perm = {m.num_perm}; lower them or raise num_perm.")
    s = config.semantic
    _check(_number(s.threshold) and 0 < s.threshold <= 1, f"semantic.threshold must be a cosine in (0, 1], got {s.threshold!r}.")
    _check(s.clusters is None or (_number(s.clusters, True) and s.clusters >= 1), f"semantic.clusters must be >= 1, got {s.clusters!r}.")
    _check(_number(s.batch_size, True) and s.batch_size >= 1, f"semantic.batch_size must be >= 1, got {s.batch_size!r}.")
    _check_quality_params(config.quality.params)
    a = config.anomaly
    if "anomaly" in config.stages:
        _check(a.reference is not None, "the anomaly stage needs anomaly.reference: a JSONL / Parquet / .txt file of good documents.")
        _check(Path(a.reference).expanduser().is_file(), f"anomaly.reference {a.reference} does not exist; point it at a file of good documents.")
    _check(_number(a.k, True) and a.k >= 1, f"anomaly.k must be >= 1, got {a.k!r}.")
    _check(a.threshold is None or _number(a.threshold), f"anomaly.threshold must be a number (a cosine distance), got {a.threshold!r}.")
    _check(_number(a.quantile) and 0 < a.quantile <= 1, f"anomaly.quantile must be in (0, 1], got {a.quantile!r}.")
    _check(a.batch_size >= 1, f"anomaly.batch_size must be >= 1, got {a.batch_size!r}.")


def _check_quality_params(params: dict[str, Any]) -> None:
    """Unknown quality rule names fail here, with the valid ones, rather than deep inside a run."""
    import inspect

    from checks.text_quality import check_text_quality

    valid = [p for p in inspect.signature(check_text_quality).parameters if p != "properties"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"unknown quality option(s) {unknown}; valid: {valid}.")
