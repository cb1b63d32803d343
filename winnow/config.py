"""Audit configuration: every option of ``winnow audit``, stored with each run so it can resume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from winnow.errors import ConfigError

DEFAULT_K = 10
DEFAULT_BATCH_SIZE = 32
DEFAULT_SHARD_SIZE = 512
TASK_RUNNERS = ("default", "dask")


@dataclass
class AuditConfig:
    """What to audit and how. ``params`` maps a detector name to keyword overrides."""

    source: str
    modality: str | None = None
    text_col: str | None = None
    path_col: str | None = None
    label_col: str | None = None
    id_col: str | None = None
    name: str | None = None
    model: str | None = None
    device: str | None = None
    k: int = DEFAULT_K
    batch_size: int = DEFAULT_BATCH_SIZE
    shard_size: int = DEFAULT_SHARD_SIZE
    detectors: list[str] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    suite: str | None = None
    pred_probs: str | None = None
    reference: str | None = None
    """A completed run to audit this batch against, or ``"previous"`` for the dataset's newest
    completed run (what scheduled audits use): the batch is tested for drift against that run, and
    its duplicates, off-topic items and outliers are found against the reference corpus too
    (docs/incremental.md). ``None``: the batch is audited on its own."""
    blocking: bool = False
    """A failed expectation of ``suite`` fails the run: status ``failed-checks``, a failed Prefect
    flow run, CLI exit code 3 (findings are stored all the same)."""
    task_runner: str = "default"
    """Where the shard and detector tasks run: ``default`` (in this process, one after another)
    or ``dask`` (a Dask cluster through prefect-dask; see docs/incremental.md)."""
    dask_address: str | None = None
    """The scheduler of an existing Dask cluster (``tcp://host:8786``); ``None`` with
    ``task_runner="dask"`` starts a local cluster for the run."""

    def __post_init__(self) -> None:
        from winnow.datasets import existing_source

        self.source = str(existing_source(self.source))  # checked before any run is registered
        if self.suite is not None:
            suite = Path(self.suite).expanduser().resolve()
            if not suite.is_file():
                raise ConfigError(f"--suite {self.suite} does not exist; write one with `winnow suite infer` or see docs/examples/suite.yaml.")
            self.suite = str(suite)
        if self.pred_probs is not None:
            probs = Path(self.pred_probs).expanduser().resolve()
            if probs.suffix != ".npy" or not probs.is_file():
                raise ConfigError(f"--pred-probs {self.pred_probs} must be an existing .npy file (numpy.save) with one row per item.")
            self.pred_probs = str(probs)
        self.name = self.name or Path(self.source).stem
        if self.blocking and self.suite is None:
            raise ConfigError("--blocking fails the run when an expectation of --suite fails; give --suite SUITE too.")
        if self.dask_address is not None:
            self.task_runner = "dask"
        if self.task_runner not in TASK_RUNNERS:
            raise ConfigError(f"--task-runner must be one of {', '.join(TASK_RUNNERS)}, got {self.task_runner!r}.")
        for option in ("k", "batch_size", "shard_size"):
            if int(getattr(self, option)) < 1:
                raise ConfigError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(self, option)}.")
        from detectors import validate_params

        validate_params(self.params, self.detectors)  # a typo fails here, not after hours of embedding

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuditConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_param(text: str) -> tuple[str, str, Any]:
    """``detector.param=value`` → ``(detector, param, value)``; the value is parsed as a number or
    boolean when it looks like one."""
    key, sep, raw = text.partition("=")
    detector, dot, param = key.partition(".")
    if not sep or not dot or not detector or not param:
        raise ConfigError(f"--param {text!r} must look like DETECTOR.PARAM=VALUE, e.g. near_duplicate.threshold=0.9.")
    value: Any = raw
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        value = lowered == "true"
    else:
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
    return detector, param, value


def params_from_strings(items: list[str]) -> dict[str, dict[str, Any]]:
    """Collect repeated ``--param`` options into ``{detector: {param: value}}``."""
    params: dict[str, dict[str, Any]] = {}
    for text in items:
        detector, param, value = parse_param(text)
        params.setdefault(detector, {})[param] = value
    return params
