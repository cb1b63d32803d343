"""The ``winnow`` command line: a thin layer over :mod:`winnow.audit`, the store and exports.

Errors in the user's input exit with code 2 and a message that says what to do.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from winnow.errors import ChecksFailed, WinnowError

app = typer.Typer(
    help="winnow: find duplicates, off-topic items, label errors and outliers in image, text and tabular datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts use [default: …] literally
)
console = Console()
err = Console(stderr=True)
LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = {LOOPBACK, "localhost", "::1"}

# options shared by `audit` and `schedule`, defined once
DbOption = typer.Option(None, "--db", envvar="WINNOW_DB", help="DuckDB file for results [default: ./winnow.duckdb].")
ModalityOption = typer.Option(None, help="image, text or tabular [default: detected].")
TextColOption = typer.Option(None, help="Column holding the text (text manifests).")
PathColOption = typer.Option(None, help="Column holding image paths (image manifests).")
LabelColOption = typer.Option(None, help="Column holding the label, if any.")
IdColOption = typer.Option(None, help="Column holding unique item ids [default: row number].")
ModelOption = typer.Option(None, help="efficientnet-lite0, minilm, tabular or open_clip:ARCH:CHECKPOINT [default: per modality].")
DeviceOption = typer.Option(None, help="auto, cpu or cuda [default: cuda when available].")
DetectorOption = typer.Option([], "--detector", help="Run only this detector (repeatable) [default: all].")
ParamOption = typer.Option([], "--param", help="Detector parameter, DETECTOR.PARAM=VALUE (repeatable).")
SuiteOption = typer.Option(None, help="Great Expectations suite (GX JSON or winnow's short YAML) to check a table against.")


def _store(db: Optional[Path]):
    from winnow.store import Store

    return Store(db)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :class:`WinnowError` into a clean message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except WinnowError as exc:
            err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def audit(
    source: Optional[Path] = typer.Argument(None, help="Image folder, or CSV / Parquet / JSONL file (a manifest or a table)."),
    modality: Optional[str] = ModalityOption,
    text_col: Optional[str] = TextColOption,
    path_col: Optional[str] = PathColOption,
    label_col: Optional[str] = LabelColOption,
    id_col: Optional[str] = IdColOption,
    db: Optional[Path] = DbOption,
    name: Optional[str] = typer.Option(None, help="Dataset name [default: the source's file or folder name]."),
    model: Optional[str] = ModelOption,
    device: Optional[str] = DeviceOption,
    k: int = typer.Option(10, help="Neighbours per item in the shared kNN graph."),
    batch_size: int = typer.Option(32, help="Items per forward pass."),
    shard_size: int = typer.Option(512, help="Items per embedding shard (each shard is committed when done)."),
    detector: list[str] = DetectorOption,
    param: list[str] = ParamOption,
    suite: Optional[Path] = SuiteOption,
    pred_probs: Optional[Path] = typer.Option(None, help="Your out-of-fold class probabilities (.npy, one row per item, classes in sorted order)."),
    resume: Optional[str] = typer.Option(None, help="Finish the interrupted run RUN instead of starting a new one."),
    reference: Optional[str] = typer.Option(
        None, help="Audit this batch against run RUN, or 'previous' (the dataset's newest completed run): duplicates are searched "
        "in the reference corpus too, off-topic items and outliers scored against it, and the batch tested for drift (docs/incremental.md)."),
    blocking: bool = typer.Option(False, "--blocking", help="A failed expectation of --suite fails the run: findings are stored, the run's status is failed-checks, exit code 3."),
    task_runner: str = typer.Option("default", help="default (shards and detectors run here, in turn) or dask (on a Dask cluster; needs prefect-dask)."),
    dask_address: Optional[str] = typer.Option(None, help="Scheduler of an existing Dask cluster, e.g. tcp://host:8786 (implies --task-runner dask) [default: a local cluster]."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs."),
) -> None:
    """Audit a dataset and print a summary.

    Exit codes: 0 done, 2 bad input, 3 a --blocking check failed (the findings are stored).

    Example: winnow audit photos/ --db audit.duckdb
    """
    from winnow.config import params_from_strings
    from winnow.prefect_env import configure_prefect

    configure_prefect(quiet=not verbose)
    from winnow import api

    progress = sys.stderr.isatty() and not as_json
    blocked = None
    try:
        if resume:
            summary = api.resume(resume, db=db, progress=progress).info
        else:
            if source is None:
                raise WinnowError("give a SOURCE to audit (a folder or a file), or --resume RUN.")
            summary = api.audit(
                source, db=db, progress=progress, modality=modality, text_col=text_col, path_col=path_col,
                label_col=label_col, id_col=id_col, name=name, model=model, device=device, k=k, batch_size=batch_size,
                shard_size=shard_size, detectors=list(detector) or None, params=params_from_strings(list(param)),
                suite=str(suite) if suite else None, pred_probs=str(pred_probs) if pred_probs else None, reference=reference,
                blocking=blocking, task_runner=task_runner, dask_address=dask_address,
            ).info
    except ChecksFailed as exc:
        summary, blocked = exc.summary, exc
    if as_json:
        console.print_json(json.dumps(summary, default=str))
    else:
        from winnow.report import print_summary

        print_summary(summary, console)
        console.print(f"results in {summary['db']} · open them with: [bold]winnow dashboard --db {summary['db']}[/bold]")
    if blocked is not None:
        err.print(f"[bold red]blocking checks failed:[/bold red] {escape(str(blocked))} (exit code {blocked.exit_code})")
        raise typer.Exit(blocked.exit_code)


@app.command()
@user_errors
def runs(db: Optional[Path] = DbOption, dataset: Optional[str] = typer.Option(None, help="Only runs of this dataset.")) -> None:
    """List audit runs, newest first.

    Example: winnow runs --db audit.duckdb
    """
    store = _store(db)
    frame = store.list_runs(dataset)
    table = Table(title=f"runs in {store.path}")
    for column in ("run", "dataset", "modality", "status", "started", "items", "flagged"):
        table.add_column(column, no_wrap=column in ("run", "started"), justify="right" if column in ("items", "flagged") else "left")
    for row in frame.itertuples():
        counts = json.loads(row.counts) if isinstance(row.counts, str) else {}
        flagged = sum((counts.get("flagged") or {}).values())
        table.add_row(row.run_id, escape(row.dataset), row.modality or "", row.status, f"{row.started:%Y-%m-%d %H:%M}", str(counts.get("items", "")), str(flagged))
    console.print(table)


@app.command()
@user_errors
def show(run: Optional[str] = typer.Argument(None, help="Run id [default: the newest run]."), db: Optional[Path] = DbOption,
         top: int = typer.Option(5, help="Top flagged items per issue type.")) -> None:
    """Summarise one run: counts per issue type and the top flagged items.

    Example: winnow show 20261123-101500-ab12cd
    """
    from winnow.report import print_summary
    from winnow.stages import summarize

    store = _store(db)
    run_id = store.resolve_run(run)
    info = store.get_run(run_id)
    summary = {**info["counts"], **summarize(store, run_id, top=top), "dataset": info["dataset"], "modality": info["modality"]}
    summary.setdefault("db", str(store.path))
    console.print(f"status: {info['status']}" + (f" ({escape(info['error'])})" if info.get("error") else ""))
    print_summary(summary, console)


@app.command()
@user_errors
def export(
    what: str = typer.Option(..., help="findings, pairs or clean (the dataset without removed items)."),
    out: Path = typer.Option(..., help="Output file."),
    run: Optional[str] = typer.Option(None, help="Run id [default: the newest run]."),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv, parquet or jsonl [default: from --out's extension]."),
    db: Optional[Path] = DbOption,
) -> None:
    """Export a run's findings, duplicate pairs or cleaned dataset.

    Example: winnow export --what findings --out findings.parquet
    """
    from winnow.export import export as do_export

    run_id, rows = do_export(_store(db), what, out, run_id=run, fmt=fmt)
    console.print(f"wrote {rows} rows of {what} from run {run_id} to {out}")


@app.command()
@user_errors
def dashboard(
    db: Optional[Path] = DbOption,
    port: int = typer.Option(8501, help="Port to listen on."),
    host: str = typer.Option(
        LOOPBACK, help="Address to bind. Anything but 127.0.0.1 exposes the results, without a login, to every "
        "machine that can reach this one; winnow warns when you do it."),
) -> None:
    """Open the triage dashboard (Streamlit), on 127.0.0.1 unless --host says otherwise.

    Example: winnow dashboard --db audit.duckdb --port 8501
    """
    store = _store(db)
    if not store.path.exists():
        raise WinnowError(f"no winnow database at {store.path}; run `winnow audit SOURCE` (or `winnow demo`) first.")
    from importlib.resources import files

    app_path = Path(str(files("dashboard") / "app.py"))
    env = {**os.environ, "WINNOW_DB": str(store.path.resolve())}
    if host not in LOOPBACK_NAMES:
        err.print(f"warning: the dashboard listens on {escape(host)}, not only on this machine: anyone who can "
                  "reach it can read the findings, see the images and record decisions (there is no login). "
                  "Put it behind an authenticating proxy, or drop --host.")
    console.print(f"dashboard for {store.path} on http://{escape(host)}:{port} (Ctrl+C to stop)")
    from dashboard.serving import streamlit_command  # the server options that keep first renders fast

    command = streamlit_command(app_path, host, port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)  # become Streamlit, so Ctrl+C and kill reach it directly


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("demo"), help="Folder for the demo datasets."),
    db: Optional[Path] = typer.Option(None, "--db", help="DuckDB file [default: OUT/winnow.duckdb]."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs."),
) -> None:
    """Build the bundled demo datasets (images, texts, a table), audit them and print the results.

    Example: winnow demo --out demo
    """
    from winnow.prefect_env import configure_prefect

    configure_prefect(quiet=not verbose)
    from winnow import api
    from winnow.demo import build_demo, planted_pairs_found
    from winnow.report import print_summary

    db = db or out / "winnow.duckdb"
    console.print(f"building demo datasets in {out}/ (planted problems listed in {out}/truth.json)")
    truth = build_demo(out)
    jobs = {
        "images": dict(source=out / "images"),
        "texts": dict(source=out / "texts.jsonl", id_col="id", label_col="label"),
        "wine": dict(source=out / "wine.csv", id_col="id", label_col="class"),
    }
    store = _store(db)
    for name, options in jobs.items():
        console.rule(f"demo: {name}")
        summary = api.audit(db=db, progress=sys.stderr.isatty(), name=f"demo-{name}", **options).info
        print_summary(summary, console)
        for kind, (found, planted) in planted_pairs_found(truth[name], store.pairs(summary["run_id"])).items():
            console.print(f"planted {kind.replace('_', ' ')}s found in pairs: {found}/{planted}")
    console.rule()
    console.print(f"results are in {db}. Open the dashboard with:\n  [bold]winnow dashboard --db {db}[/bold]")


# -- scheduled audits ------------------------------------------------------------------------------


@app.command()
@user_errors
def schedule(
    source: Optional[Path] = typer.Argument(None, help="Image folder, or CSV / Parquet / JSONL file to audit on a schedule."),
    cron: Optional[str] = typer.Option(None, help='When to run, as a cron expression, e.g. "0 2 * * *" (02:00 daily, UTC).'),
    interval: Optional[float] = typer.Option(None, help="Or run every SECONDS."),
    name: Optional[str] = typer.Option(None, help="Dataset and schedule name [default: the source's file or folder name]."),
    db: Optional[Path] = DbOption,
    modality: Optional[str] = ModalityOption,
    text_col: Optional[str] = TextColOption,
    path_col: Optional[str] = PathColOption,
    label_col: Optional[str] = LabelColOption,
    id_col: Optional[str] = IdColOption,
    model: Optional[str] = ModelOption,
    device: Optional[str] = DeviceOption,
    detector: list[str] = DetectorOption,
    param: list[str] = ParamOption,
    suite: Optional[Path] = SuiteOption,
    blocking: bool = typer.Option(False, "--blocking", help="A failed expectation of --suite fails the scheduled run (status failed-checks)."),
    work_pool: Optional[str] = typer.Option(None, help="Also register the deployment with this work pool of the server at PREFECT_API_URL."),
    list_: bool = typer.Option(False, "--list", help="List the schedules of --db."),
    remove: Optional[str] = typer.Option(None, help="Remove the schedule NAME."),
) -> None:
    """Schedule an audit of SOURCE; each run is audited against the dataset's previous run (duplicates, off-topic, drift).

    Run the schedules with `winnow serve` (or a Prefect worker, see docs/scheduling.md).

    Example: winnow schedule reviews.jsonl --cron "0 2 * * *" --id-col id --label-col label
    """
    from winnow import schedules
    from winnow.store import Store

    db_path = Store(db).path
    if list_ or remove:
        if remove:
            gone = schedules.remove_schedule(db_path, remove)
            console.print(f"removed schedule {gone.name} ({gone.when()})")
        _print_schedules(schedules.load_schedules(db_path), db_path)
        return
    if source is None:
        raise WinnowError('give a SOURCE to schedule, e.g. winnow schedule data.jsonl --cron "0 2 * * *"; or --list / --remove NAME.')
    from winnow.config import AuditConfig, params_from_strings

    config = AuditConfig(
        source=str(source), modality=modality, text_col=text_col, path_col=path_col, label_col=label_col, id_col=id_col, name=name,
        model=model, device=device, detectors=list(detector) or None, params=params_from_strings(list(param)), suite=str(suite) if suite else None,
        blocking=blocking,
    )
    entry = schedules.make_schedule(config, db_path, cron=cron, interval=interval)
    schedules.add_schedule(entry)
    console.print(f"scheduled {entry.name}: audit {config.source} {entry.when()} into {entry.db}, incremental against the previous run")
    if work_pool:
        console.print(f"registered deployment {schedules.deploy(entry, work_pool)} with work pool {work_pool}; run it with: prefect worker start --pool {work_pool}")
    else:
        console.print(f"run the schedules with: [bold]winnow serve --db {db_path}[/bold]")


def _print_schedules(entries: list, db: Path) -> None:
    """The schedules of ``db`` as a table."""
    table = Table(title=f"schedules of {db}")
    for column in ("name", "when", "source"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(entry.name, entry.when(), entry.config["source"])
    console.print(table)


@app.command()
@user_errors
def serve(db: Optional[Path] = DbOption, verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs.")) -> None:
    """Run the scheduled audits of --db until Ctrl+C (on the server at PREFECT_API_URL, else on a local one it starts).

    Example: winnow serve --db audit.duckdb
    """
    from winnow.prefect_env import configure_prefect, require_reachable_api

    configure_prefect(quiet=not verbose)
    require_reachable_api()
    from winnow import schedules
    from winnow.store import Store

    db_path = Store(db).path
    entries = schedules.load_schedules(db_path)
    _print_schedules(entries, db_path)
    console.print("serving these schedules (Ctrl+C to stop)")
    schedules.serve(db_path)


suite_app = typer.Typer(help="Great Expectations suites for tables.", no_args_is_help=True)
app.add_typer(suite_app, name="suite")


@suite_app.command("infer")
@user_errors
def suite_infer(
    source: Optional[Path] = typer.Argument(None, help="Reference table (CSV / Parquet / JSONL) the suite should describe."),
    out: Path = typer.Option(..., help="Where to write the suite (GX JSON)."),
    id_col: Optional[str] = typer.Option(None, help="Column of unique row ids [default: the run's, with --run]."),
    run: Optional[str] = typer.Option(None, help="Profile the table a completed tabular run audited, instead of SOURCE."),
    db: Optional[Path] = DbOption,
) -> None:
    """Profile a reference table (or a run's table) into a Great Expectations suite for `--suite`.

    Example: winnow suite infer --run 20261123-101500-ab12cd --out suite.json
    """
    from checks.tabular import infer_suite
    from winnow.datasets import read_table
    from winnow.datasets.columns import require_columns

    if (source is None) == (run is None):
        raise WinnowError("give either a SOURCE table or --run RUN to profile.")
    if run is not None:
        info = _store(db).get_run(run)
        if info["modality"] != "tabular":
            raise WinnowError(f"run {run} audited {info['modality']} data; suites describe tables.")
        source, id_col = Path(info["source"]), id_col or info["config"].get("id_col")
    frame = read_table(source.expanduser().resolve())
    require_columns(frame, str(source), id_col=id_col)
    suite = infer_suite(frame, id_col=id_col, name=source.stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(suite, indent=2, default=str))
    console.print(f"wrote {len(suite['expectations'])} expectations for {len(frame.columns)} columns to {out}")


@app.command(name="filter")
@user_errors
def filter_(
    inputs: str = typer.Argument(..., help="Shards to filter: a quoted glob of .jsonl, .jsonl.gz or .parquet files."),
    out: Path = typer.Option(..., help="Folder for the filtered shards, the removal manifest and the dedup index."),
    text_key: Optional[str] = typer.Option(None, help="Field holding the document text [default: text]."),
    id_key: Optional[str] = typer.Option(None, help="Field holding a document id [default: shard and line number]."),
    config: Optional[Path] = typer.Option(None, help="YAML file: stages, their order and thresholds (see docs/filter.md)."),
    workers: Optional[int] = typer.Option(None, help="Shards processed at once, on Prefect's Dask task runner [default: 1]."),
    name: Optional[str] = typer.Option(None, help="Dataset name in `winnow runs` [default: the --out folder's name]."),
    db: Optional[Path] = DbOption,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs."),
) -> None:
    """Filter a pre-training corpus: dedup (exact, MinHash, semantic), quality and anomaly filters.

    A killed run re-run with the same arguments continues where it stopped.

    Example: winnow filter 'shards/*.jsonl.gz' --out filtered/ --id-key id
    """
    from winnow.prefect_env import configure_prefect

    configure_prefect(quiet=not verbose)
    from winnow.filtering import filter_corpus, load_filter_config

    settings = load_filter_config(config, inputs=inputs, out=str(out), text_key=text_key, id_key=id_key, workers=workers, name=name)
    summary = filter_corpus(settings, db=db)
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    table = Table(title=f"{summary['items']} documents in {summary['shards']} shards")
    table.add_column("stage")
    table.add_column("removed", justify="right")
    for stage, count in summary["flagged"].items():
        table.add_row(stage, str(count))
    console.print(table)
    note = " (this run had already completed; nothing was redone)" if summary.get("already_completed") else ""
    console.print(f"kept {summary['kept']} documents in {summary['out']}{note}")
    console.print(f"removal manifest: {summary['manifest']} and the `removals` table of {summary['db']}")


@app.command()
def detectors() -> None:
    """List the registered detectors, the data they apply to and their parameters.

    Example: winnow detectors
    """
    from detectors import REGISTRY

    table = Table(title="detectors")
    for column in ("name", "modalities", "needs", "parameters", "what it flags"):
        table.add_column(column, overflow="fold", no_wrap=column == "name")
    for spec in REGISTRY.values():
        # one parameter per line: the ensembles' member lists would otherwise squeeze the other columns out
        params = "\n".join(f"{k}={_param_text(v)}" for k, v in spec.parameters().items())
        for modality, overrides in spec.modality_defaults.items():
            params += f"\n({modality}: " + ", ".join(f"{k}={_param_text(v)}" for k, v in overrides.items()) + ")"
        table.add_row(spec.name, ", ".join(sorted(spec.modalities)), ", ".join(sorted(spec.requires)) or "content hash", params, spec.description)
    console.print(table)


def _param_text(value: object) -> str:
    """A default as ``--param`` takes it: a tuple of names comma-separated (``members=a,b``; spaces are ignored)."""
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
