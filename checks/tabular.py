"""Great Expectations 1.x suites for tables: infer one from a reference table, load one from a file,
run one and translate GX's result into ``check_failed`` findings and ``check_results`` rows.

Suites are plain dicts in GX's own suite JSON shape, ``{"name": …, "expectations": [{"type": …,
"kwargs": {…}, "meta": {…}}, …], "meta": {…}}``, so ``json.dump`` saves one that GX loads with
``gx.ExpectationSuite(**suite)``. :func:`load_suite` also reads a short YAML form (see its docstring
and ``docs/examples/suite.yaml``).

Row-level and table-level expectations
    GX reports the failing rows of a column-map expectation (between, in set, not null, unique, type
    of an object column …) with ``result_format="COMPLETE"``. Rows are identified by a synthetic
    row index named ``__winnow_row__`` passed as ``unexpected_index_column_names``. It is a named
    *index*, not a column, so expectations on the column set do not see it, and it stays exact when
    the id column itself has duplicates (which is what a uniqueness expectation is there to find).
    Each failing row's item gets one ``check_failed`` finding that names every expectation, column
    and value it fails. An expectation with ``mostly`` that passes still lists the rows outside it:
    those are *tolerated* — in the finding's detail and score, but not flagged — because the suite
    says that share of them is acceptable. When such an expectation fails, all its rows are flagged.

Scores
    ``score = failed + TOLERATED_WEIGHT * tolerated / row_level_expectations`` where ``failed`` and
    ``tolerated`` count distinct expectations. An item is flagged when ``failed >= 1``; tolerated
    deviations add at most ``TOLERATED_WEIGHT`` (< 1), so every flagged item outranks every
    unflagged one and unflagged items are still ranked.

Schema changes (new, missing and retyped columns)
    They belong to the table, not to a row: every table-level expectation gets a ``check_results``
    row whose ``observed`` says what changed ("missing columns ['ash']; new columns ['vintage']",
    "alcohol has type str, expected number") with ``item_id`` NULL and ``detail.level == "table"``,
    and :func:`schema_finding` turns the failed ones into one run-level ``check_failed`` finding
    (item ``__run__``, like drift). Flagging every item for a missing column would bury the real
    row-level failures. A row-level expectation on a column that is missing cannot run; its
    ``check_results`` row says "column 'x' is missing" (``detail.level == "error"``), flags no rows,
    and counts as a schema failure.

GX cost and noise
    ``great_expectations`` is imported inside the functions that need it: its first import takes
    ~15 s cold and must stay out of the CLI start-up and of audits without tables. GX 1.24 has no
    usage analytics left to switch off (``GX_ANALYTICS_ENABLED`` is only mentioned in a docstring);
    the only noise is its tqdm progress bars, disabled through the context's ``progress_bars``.
    ``COMPLETE`` results hold every failing value, so memory grows with the number of failures.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from winnow.errors import ConfigError
from winnow.findings import RUN_ITEM_ID, make_findings

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

ISSUE_TYPE = "check_failed"
ROW_INDEX = "__winnow_row__"
CHECK_RESULTS_COLUMNS: tuple[str, ...] = ("check_name", "item_id", "success", "observed", "detail")
EXPECTATIONS_URL = "https://greatexpectations.io/expectations/"
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_INDEX], "return_unexpected_index_query": False}

# Profiling margins (infer_suite).
QUANTILES = (0.01, 0.99)  # robust range: ignores the most extreme 1 % at each end ...
RANGE_MARGIN = 0.25  # ... widens it by 25 % of the inter-quantile spread, then covers min and max
MOSTLY_MARGIN = 0.02  # `mostly` = observed share minus 2 points, when the share is below 100 %
MAX_CATEGORIES = 20  # a text column is categorical with at most 20 distinct values ...
CATEGORY_SHARE = 0.5  # ... and at most one distinct value per two non-null rows
TOLERATED_WEIGHT = 0.5  # score weight of deviations that a passing `mostly` tolerates

_INTS = [f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)]
_NULLABLE = [f"{s}Int{b}Dtype" for s in ("", "U") for b in (8, 16, 32, 64)] + ["Float32Dtype", "Float64Dtype"]
TYPE_FAMILIES: dict[str, list[str]] = {
    "number": [*_INTS, "float16", "float32", "float64", *_NULLABLE, "int", "float"],
    "bool": ["bool", "BooleanDtype"],
    "string": ["StringDtype", "str"],
    "datetime": [f"datetime64[{unit}]" for unit in ("s", "ms", "us", "ns")],
}
SHORT_FORM_KEYS = ("name", "columns", "unique", "columns_exact")
COLUMN_RULES = ("type", "not_null", "min", "max", "in", "unique", "mostly")


# ---------------------------------------------------------------------------------------------
# infer_suite


def infer_suite(frame: pd.DataFrame, *, id_col: str | None = None, name: str = "winnow-inferred") -> dict:
    """Profile a reference table into a GX suite dict that the same table passes.

    Expectations: the exact column set; per column its type family (number, bool, string,
    datetime), non-null share, numeric range and, for low-cardinality text columns, the allowed
    values; ``id_col`` must stay unique (and gets no range or value set: ids are not features).
    Margins (module constants): a range is the ``QUANTILES`` widened by ``RANGE_MARGIN`` of their
    spread (so one extreme value does not inflate the margin), extended to the observed min and max
    so the reference passes, and never below 0 for a column that never was. Ranges are strict: with
    ``mostly``, a column with one natural outlier (wine's magnesium) tolerated a planted -3.0.
    The non-null check has ``mostly`` = observed share minus ``MOSTLY_MARGIN``, left out (strict)
    when the share is 100 %, so a first null in a column that never had one fails however large
    the table is.
    """
    _require_column(frame, id_col, "id_col")
    table = _normalise(frame)
    expectations = [_expect("expect_table_columns_to_match_set", column_set=[str(c) for c in table.columns], exact_match=True)]
    for column in table.columns:
        expectations += _profile_column(table[column], is_id=column == id_col)
    margins = {"quantiles": list(QUANTILES), "range_margin": RANGE_MARGIN, "mostly_margin": MOSTLY_MARGIN}
    return {"name": name, "expectations": expectations, "meta": {"winnow": {"inferred_from_rows": len(table), **margins}}}


def _profile_column(values: pd.Series, *, is_id: bool) -> list[dict]:
    """Type, non-null share, and uniqueness (id) or range / allowed values for one column."""
    column = str(values.name)
    out = []
    family = _type_family(values)
    if family:
        out.append(_type_expectation(column, family))
    present = values.dropna()
    not_null = _mostly(len(present) / len(values)) if len(values) else None
    if not_null is not None:
        out.append(_expect("expect_column_values_to_not_be_null", column=column, **not_null))
    if is_id:
        out.append(_expect("expect_column_values_to_be_unique", column=column))
    elif family == "number":
        numbers = present.astype("float64")
        finite = numbers[np.isfinite(numbers)]
        if len(finite):
            out.append(_range_expectation(column, finite))
    elif family == "string" and len(present):
        categories = _category_expectation(column, present)
        out += [categories] if categories else []
    return out


def _type_family(values: pd.Series) -> str | None:
    """The family of a normalised column's dtype; None for mixed objects and tz-aware times."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    return None


def _range_expectation(column: str, values: pd.Series) -> dict:
    """``expect_column_values_to_be_between`` from widened robust quantiles, covering the reference."""
    low_q, high_q = (float(q) for q in values.quantile(list(QUANTILES)))
    margin = RANGE_MARGIN * ((high_q - low_q) or max(abs(high_q), 1.0))
    exponent = math.floor(math.log10(margin)) - 1  # round one digit finer than the margin
    step, digits = 10.0**exponent, max(0, -exponent)
    low = round(math.floor(min(low_q - margin, values.min()) / step) * step, digits)
    high = round(math.ceil(max(high_q + margin, values.max()) / step) * step, digits)
    if values.min() >= 0:
        low = max(low, 0.0)
    return _expect("expect_column_values_to_be_between", column=column, min_value=low, max_value=high)


def _category_expectation(column: str, values: pd.Series) -> dict | None:
    """``expect_column_values_to_be_in_set`` when a text column has few distinct values."""
    distinct = sorted(str(v) for v in values.unique())
    if len(distinct) > MAX_CATEGORIES or len(distinct) > CATEGORY_SHARE * len(values):
        return None
    return _expect("expect_column_values_to_be_in_set", column=column, value_set=distinct)


def _type_expectation(column: str, family: str) -> dict:
    """``expect_column_values_to_be_in_type_list`` with every dtype name of a type family."""
    type_list = TYPE_FAMILIES[family]
    return _expect("expect_column_values_to_be_in_type_list", meta={"type_family": family}, column=column, type_list=type_list)


def _mostly(share: float) -> dict[str, float] | None:
    """``{}`` (strict) for a share of 1, ``{"mostly": share - margin}``, or None when that is <= 0."""
    if share >= 1.0:
        return {}
    mostly = math.floor((share - MOSTLY_MARGIN) * 10_000) / 10_000
    return {"mostly": mostly} if mostly > 0 else None


def _expect(type_: str, *, meta: dict | None = None, **kwargs: Any) -> dict:
    """One expectation in GX's JSON shape."""
    return {"type": type_, "kwargs": kwargs, **({"meta": meta} if meta else {})}


# ---------------------------------------------------------------------------------------------
# load_suite


def load_suite(path: Path) -> dict:
    """Read a suite file: GX's suite JSON (or the same shape in YAML), or the short YAML form.

    Short form (YAML or JSON; every key optional)::

        name: prices
        columns:
          price: {type: number, min: 0, max: 1000, not_null: true}
          colour: {in: [red, blue], mostly: 0.99}
          sku: {unique: true}
        unique: [id]
        columns_exact: true   # the table has exactly the columns listed under `columns` and `unique`

    ``type`` is one of number, string, bool, datetime; ``mostly`` applies to the column's other
    rules. Raises :class:`ConfigError` saying what is wrong and how to fix it, including for
    expectations GX does not know or cannot build (so this imports GX).
    """
    path = Path(path)
    data = _read_mapping(path)
    suite = _from_gx_shape(data, path) if "expectations" in data else _from_short_form(data, path)
    _gx_expectations(suite, source=str(path))
    return suite


def _read_mapping(path: Path) -> dict:
    """Parse a .json / .yaml / .yml file that must hold a mapping."""
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist; pass the path of a .json or .yaml suite.")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            raise ConfigError(f"{path} is not valid JSON ({where}: {exc.msg}); fix the syntax.") from exc
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({exc}); fix the syntax.") from exc
    else:
        raise ConfigError(f"{path} has suffix {path.suffix!r}; suite files end in .json, .yaml or .yml.")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} holds a {type(data).__name__}; a suite is a mapping with 'expectations' (GX) or 'columns' (short form)."
        )
    return data


def _from_gx_shape(data: dict, path: Path) -> dict:
    """Keep name, type, kwargs and meta of a GX suite; drop ids and GX bookkeeping."""
    expectations = data["expectations"]
    if not isinstance(expectations, list):
        raise ConfigError(f"{path}: 'expectations' must be a list of {{type, kwargs}} mappings.")
    out = []
    for i, item in enumerate(expectations):
        if isinstance(item, dict) and "expectation_type" in item:
            raise ConfigError(
                f"{path}: expectation {i} uses GX 0.x's 'expectation_type'; GX 1.x calls it 'type' (and the suite's name 'name')."
            )
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not isinstance(item.get("kwargs", {}), dict):
            raise ConfigError(f"{path}: expectation {i} needs a string 'type' and a 'kwargs' mapping, got {item!r}.")
        meta = {"meta": item["meta"]} if item.get("meta") else {}
        out.append({"type": item["type"], "kwargs": dict(item.get("kwargs", {})), **meta})
    return {"name": str(data.get("name") or path.stem), "expectations": out, "meta": data.get("meta") or {}}


def _from_short_form(data: dict, path: Path) -> dict:
    """Map the short YAML form onto GX expectations (see :func:`load_suite`)."""
    _reject_unknown(data, SHORT_FORM_KEYS, f"{path}: unknown key", "valid top-level keys")
    columns = data.get("columns") or {}
    unique = data.get("unique") or []
    if not isinstance(columns, dict):
        raise ConfigError(f"{path}: 'columns' must map column names to rules, e.g. {{price: {{min: 0}}}}.")
    if not isinstance(unique, list) or not all(isinstance(c, str) for c in unique):
        raise ConfigError(f"{path}: 'unique' must be a list of column names, e.g. [id].")
    if not columns and not unique:
        raise ConfigError(f"{path} has no 'expectations' (GX suite) and no 'columns' or 'unique' (short form); add rules.")
    expectations = []
    if data.get("columns_exact"):
        listed = list(dict.fromkeys([*map(str, columns), *unique]))
        expectations.append(_expect("expect_table_columns_to_match_set", column_set=listed, exact_match=True))
    for column, rules in columns.items():
        expectations += _column_rules(str(column), rules or {}, path)
    expectations += [_expect("expect_column_values_to_be_unique", column=c) for c in unique]
    return {"name": str(data.get("name") or path.stem), "expectations": expectations, "meta": {}}


def _column_rules(column: str, rules: Any, path: Path) -> list[dict]:
    """Expectations for one column's short-form rules."""
    where = f"{path}: column {column!r}"
    if not isinstance(rules, dict):
        raise ConfigError(f"{where} needs a mapping of rules ({', '.join(COLUMN_RULES)}), got {rules!r}.")
    _reject_unknown(rules, COLUMN_RULES, f"{where} has unknown rule", "valid rules")
    mostly = {"mostly": rules["mostly"]} if "mostly" in rules else {}
    out = []
    if "type" in rules:
        if rules["type"] not in TYPE_FAMILIES:
            raise ConfigError(f"{where} has type {rules['type']!r}; use one of {', '.join(TYPE_FAMILIES)}.")
        out.append(_type_expectation(column, rules["type"]))
    if rules.get("not_null"):
        out.append(_expect("expect_column_values_to_not_be_null", column=column, **mostly))
    if "min" in rules or "max" in rules:
        bounds = {"min_value": rules.get("min"), "max_value": rules.get("max")}
        if any(isinstance(b, bool) or not isinstance(b, (int, float, type(None))) for b in bounds.values()):
            raise ConfigError(f"{where}: min and max must be numbers, got {rules.get('min')!r} and {rules.get('max')!r}.")
        out.append(_expect("expect_column_values_to_be_between", column=column, **bounds, **mostly))
    if "in" in rules:
        if not isinstance(rules["in"], list):
            raise ConfigError(f"{where}: 'in' must be a list of allowed values, e.g. [red, blue].")
        out.append(_expect("expect_column_values_to_be_in_set", column=column, value_set=rules["in"], **mostly))
    if rules.get("unique"):
        out.append(_expect("expect_column_values_to_be_unique", column=column, **mostly))
    return out


def _reject_unknown(mapping: dict, allowed: tuple[str, ...], what: str, valid: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise ConfigError(f"{what} {unknown[0]!r}; {valid} are: {', '.join(allowed)}.")


def _gx_expectations(suite: dict, *, source: str) -> list[Expectation]:
    """Build GX expectation objects, turning GX's errors into :class:`ConfigError`."""
    import great_expectations.exceptions as gx_exceptions
    from great_expectations.compatibility.pydantic import ValidationError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise ConfigError(f"{source}: a suite is a dict with a list under 'expectations'; make one with infer_suite or load_suite.")
    built = []
    for i, item in enumerate(suite["expectations"]):
        kind = item.get("type") if isinstance(item, dict) else None
        try:
            config = ExpectationConfiguration(type=kind, kwargs=item.get("kwargs", {}), meta=item.get("meta"))
            built.append(config.to_domain_obj())
        except ValidationError as exc:
            problems = dict.fromkeys(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise ConfigError(
                f"{source}: expectation {i} ({kind}) has invalid kwargs — {'; '.join(problems)}. See {EXPECTATIONS_URL}{kind}."
            ) from exc
        except gx_exceptions.ExpectationNotFoundError as exc:
            raise ConfigError(
                f"{source}: expectation {i} has unknown type {kind!r}; check the spelling against {EXPECTATIONS_URL}."
            ) from exc
        except (gx_exceptions.GreatExpectationsError, AttributeError, TypeError) as exc:
            raise ConfigError(
                f"{source}: expectation {i} is not a valid GX expectation ({exc}); it needs a 'type' and a 'kwargs' mapping."
            ) from exc
    return built


# ---------------------------------------------------------------------------------------------
# run_suite


@dataclass(frozen=True)
class _Outcome:
    """One expectation's result, translated: its check_results row and its failing rows."""

    name: str
    success: bool
    observed: str
    detail: dict
    failures: list[tuple[int, dict]]  # (row position, failure record)


def run_suite(
    frame: pd.DataFrame, suite: dict, *, id_col: str | None = None, item_ids: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate ``frame`` against ``suite`` with GX; return ``(findings, check_results)``.

    Pass the table as read (all its columns, id and label included) so the suite's column set
    matches. ``item_ids`` (one per row) name the items; by default the ``id_col`` values as
    strings, else row numbers. Findings: one ``check_failed`` row per item, every item scored (see
    the module docstring); rows sharing an item id are merged into that item's finding. Check
    results: one row per expectation (``check_name``, ``item_id`` NULL, ``success``, ``observed``,
    ``detail`` JSON), in suite order; table-level failures (schema changes) appear only there.
    """
    _require_column(frame, id_col, "id_col")
    ids = _item_ids(frame, id_col, item_ids)
    expectations = _gx_expectations(suite, source=f"suite {suite.get('name')!r}" if isinstance(suite, dict) else "suite")
    results = _validate(_normalise(frame), str(suite.get("name") or "winnow"), expectations)
    columns = {str(c) for c in frame.columns}
    names = _check_names(suite["expectations"])
    outcomes = [_outcome(e, name, result, columns, ids) for e, name, result in zip(suite["expectations"], names, results)]
    return _findings(ids, outcomes), _check_results(outcomes)


def _item_ids(frame: pd.DataFrame, id_col: str | None, item_ids: list[str] | None) -> list[str]:
    if item_ids is not None:
        if len(item_ids) != len(frame):
            raise ValueError(f"item_ids has {len(item_ids)} values for a table of {len(frame)} rows")
        return [str(i) for i in item_ids]
    if id_col is not None:
        return frame[id_col].astype(str).tolist()
    return [str(i) for i in range(len(frame))]


def _validate(table: pd.DataFrame, name: str, expectations: list[Expectation]) -> list[Any]:
    """Run GX 1.x on an ephemeral context; results in the order of ``expectations``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("winnow").add_dataframe_asset("table")
    batch = asset.add_batch_definition_whole_dataframe("whole table")
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    run = definition.run(batch_parameters={"dataframe": table}, result_format=RESULT_FORMAT)
    by_id = {r.expectation_config.id: r for r in run.results}
    return [by_id[e.id] for e in suite.expectations]


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy GX can type-check: text columns as pandas ``string``, rows indexed by ``ROW_INDEX``.

    GX 1.24 recognises no type name for pandas 3's default ``str`` dtype or for categoricals, and
    checks ``object`` columns value by value; one ``string`` dtype makes a text column one type
    whichever pandas version or file format produced it.
    """
    out = frame.reset_index(drop=True)
    out.index = pd.RangeIndex(len(out), name=ROW_INDEX)
    text = [c for c in out.columns if _is_text(out[c])]
    return out.astype({c: "string" for c in text}) if text else out


def _is_text(values: pd.Series) -> bool:
    """Object columns holding only text, either string dtype, or categoricals of text."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return pd.api.types.is_string_dtype(values.cat.categories)
    return pd.api.types.is_string_dtype(values)


def _check_names(expectations: list[dict]) -> list[str]:
    """``type(column)`` per expectation, numbered when a suite repeats one (``… #2``)."""
    seen: Counter[str] = Counter()
    names = []
    for expectation in expectations:
        column = expectation.get("kwargs", {}).get("column")
        name = f"{expectation['type']}({column})" if column else expectation["type"]
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names


def _outcome(expectation: dict, name: str, result: Any, columns: set[str], ids: list[str]) -> _Outcome:
    """Translate one GX ``ExpectationValidationResult``."""
    kind, kwargs = expectation["type"], expectation.get("kwargs", {})
    column = kwargs.get("column")
    base = {"expectation": kind, "kwargs": _plain(kwargs)}
    error = _exception_message(result.exception_info or {})
    if error:
        observed = f"column {column!r} is missing" if column and column not in columns else f"could not run: {error}"
        return _Outcome(name, False, observed, {**base, "level": "error", "error": error}, [])
    res = result.result
    if "unexpected_index_list" not in res:
        observed = _table_observed(expectation, res)
        return _Outcome(name, bool(result.success), observed, {**base, "level": "table", "result": _plain(res)}, [])
    tolerated = bool(result.success)
    failures = [(int(e[ROW_INDEX]), _failure(expectation, name, e, tolerated=tolerated)) for e in res["unexpected_index_list"]]
    failing_items = list(dict.fromkeys(ids[row] for row, _ in failures))
    detail = {
        **base,
        "level": "rows",
        "unexpected_count": res.get("unexpected_count"),
        "unexpected_percent": res.get("unexpected_percent"),
        "item_ids": failing_items[:20],
    }
    observed = f"{res.get('unexpected_count', len(failures))} of {res.get('element_count', len(ids))} rows unexpected"
    return _Outcome(name, bool(result.success), observed, detail, failures)


def _exception_message(info: dict) -> str | None:
    """GX's exception message, whether ``info`` is flat or keyed by metric."""
    if "raised_exception" in info:
        return info.get("exception_message") if info["raised_exception"] else None
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    return messages[0] if messages else None


def _table_observed(expectation: dict, res: dict) -> str:
    """A readable observed value for a table-level result (schema changes spelled out)."""
    kind, kwargs = expectation["type"], expectation.get("kwargs", {})
    mismatched = (res.get("details") or {}).get("mismatched")
    if kind == "expect_table_columns_to_match_set" and mismatched:
        missing, new = sorted(mismatched.get("missing") or []), sorted(mismatched.get("unexpected") or [])
        return "; ".join([*([f"missing columns {missing}"] if missing else []), *([f"new columns {new}"] if new else [])])
    if kind == "expect_column_values_to_be_in_type_list":
        expected = (expectation.get("meta") or {}).get("type_family") or ", ".join(kwargs.get("type_list") or [])
        return f"{kwargs.get('column')} has type {res.get('observed_value')}, expected {expected}"
    return json.dumps(_plain(res.get("observed_value")), default=str)


def _failure(expectation: dict, name: str, entry: dict, *, tolerated: bool) -> dict:
    """One failing row of one expectation: where, what value, and a readable message."""
    kind, kwargs = expectation["type"], expectation.get("kwargs", {})
    values = {k: _plain(v) for k, v in entry.items() if k != ROW_INDEX}
    column = kwargs.get("column")
    value = values.get(column) if column in values else values
    message = f"{_describe(kind, kwargs, value)} ({kind})"
    return {"check": name, "expectation": kind, "column": column, "value": value, "tolerated": tolerated, "message": message}


def _describe(kind: str, kwargs: dict, value: Any) -> str:
    """What is wrong with ``value`` under one expectation, in words."""
    column = kwargs.get("column")
    shown = f"{column} = {value!r}" if column else f"row values {value!r}"
    if kind == "expect_column_values_to_not_be_null":
        return f"{column} is missing"
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if isinstance(value, (int, float)) and low is not None and value < low:
            return f"{shown} is below the minimum {low}"
        if isinstance(value, (int, float)) and high is not None and value > high:
            return f"{shown} is above the maximum {high}"
        return f"{shown} is outside [{low}, {high}]"
    if kind == "expect_column_values_to_be_in_set":
        allowed = list(kwargs.get("value_set") or [])
        more = f" and {len(allowed) - 10} more" if len(allowed) > 10 else ""
        return f"{shown} is not one of the allowed values {allowed[:10]}{more}"
    if kind == "expect_column_values_to_be_unique":
        return f"{shown} is not unique"
    if kind == "expect_column_values_to_match_regex":
        return f"{shown} does not match {kwargs.get('regex')!r}"
    if kind == "expect_column_values_to_be_in_type_list":
        return f"{shown} has type {type(value).__name__}, not one of {kwargs.get('type_list')}"
    return f"{shown} is unexpected"


def _findings(ids: list[str], outcomes: list[_Outcome]) -> pd.DataFrame:
    """One ``check_failed`` finding per distinct item id, in first-appearance order."""
    per_item: dict[str, list[dict]] = {item: [] for item in ids}
    for outcome in outcomes:
        for row, failure in outcome.failures:
            per_item[ids[row]].append({**failure, "row": row, "item_id": ids[row]})
    row_checks = max(1, sum(o.detail.get("level") == "rows" for o in outcomes))
    scores, flagged, reasons, details = [], [], [], []
    for failures in per_item.values():
        failed = {f["check"] for f in failures if not f["tolerated"]}
        tolerated = {f["check"] for f in failures if f["tolerated"]}
        scores.append(len(failed) + TOLERATED_WEIGHT * len(tolerated) / row_checks)
        flagged.append(bool(failed))
        messages = dict.fromkeys(f["message"] for f in failures if not f["tolerated"])
        reasons.append("; ".join(messages) + "." if failed else None)
        details.append({"failures": failures, "failed": sorted(failed), "tolerated": sorted(tolerated)})
    return make_findings(list(per_item), ISSUE_TYPE, scores, flagged, reasons, details)


def _check_results(outcomes: list[_Outcome]) -> pd.DataFrame:
    """One row per expectation for the ``check_results`` table (``run_id`` is added by the flow)."""
    return pd.DataFrame(
        {
            "check_name": pd.Series([o.name for o in outcomes], dtype="object"),
            "item_id": pd.Series([None] * len(outcomes), dtype="object"),
            "success": pd.Series([o.success for o in outcomes], dtype="bool"),
            "observed": pd.Series([o.observed for o in outcomes], dtype="object"),
            "detail": pd.Series([json.dumps(o.detail, sort_keys=True, default=str) for o in outcomes], dtype="object"),
        },
        columns=list(CHECK_RESULTS_COLUMNS),
    )


def schema_finding(check_results: pd.DataFrame) -> pd.DataFrame:
    """The run-level ``check_failed`` finding (item :data:`~winnow.findings.RUN_ITEM_ID`) for the
    table-level expectations — column set and types, i.e. schema changes: score = how many failed,
    flagged when any did, the reason names each with what was observed."""
    table_level = [json.loads(d).get("level") in ("table", "error") for d in check_results["detail"]]
    failed = check_results[np.asarray(table_level, dtype=bool) & ~check_results["success"].to_numpy(dtype=bool)]
    reason = "; ".join(f"{name}: {observed}" for name, observed in zip(failed["check_name"], failed["observed"])) or None
    details = {"failed": failed[["check_name", "observed"]].to_dict(orient="records"), "table_level_checks": int(sum(table_level))}
    return make_findings([RUN_ITEM_ID], ISSUE_TYPE, [float(len(failed))], [len(failed) > 0], [reason], [details])


def _plain(value: Any) -> Any:
    """A JSON-friendly copy: numpy scalars unwrapped, missing values as None, timestamps as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _require_column(frame: pd.DataFrame, column: str | None, option: str) -> None:
    if column is not None and column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise ConfigError(f"{option} {column!r} is not a column of the table; its columns are: {columns}.")
