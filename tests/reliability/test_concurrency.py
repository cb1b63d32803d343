"""One DuckDB file, many users at once: dashboard readers, an audit writing, a second audit writing.

DuckDB lets one process at a time hold a file read-write, and while it does no other process can
open the file at all. The store keeps every connection short and retries on a lock conflict, so
(a) a reader loop calling the Store's read methods the way the dashboard does, (b) ``winnow audit``
on one folder and (c) ``winnow audit`` on another folder, into the same file at the same time, must
all succeed: both runs complete with every finding, and readers never see anything but results.
The real dashboard (``winnow dashboard``, rendered in Chromium) and the app under Streamlit's
AppTest keep working while the audits write. A writer that cannot get the lock in time raises
:class:`StoreLocked` with a message that says what to do, and one that can wait gets in.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import winnow.store
from tests.conftest import fashion_images
from tests.live_dashboard import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, dashboard_server, render_dashboard
from winnow.errors import StoreLocked
from winnow.store import Store

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
ISSUE_TYPES = 7  # corrupt, low_quality, exact/near duplicate, off_topic, label_error, outlier
READER_LOCK_TIMEOUT = 10.0  # the dashboard's (dashboard.ui.LOCK_TIMEOUT_S)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Two folders of different real images: 80 and 60."""
    a, b = tmp_path_factory.mktemp("source-a"), tmp_path_factory.mktemp("source-b")
    for i, (pixels, label) in enumerate(fashion_images(14, classes=tuple(range(10)))):
        root = a if i % 14 < 8 else b
        (root / label).mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return a, b


class LockSpy:
    """Counts, per thread, the lock conflicts the store met (each one is a retry after a short sleep)."""

    def __init__(self, monkeypatch) -> None:
        self.conflicts: Counter[str] = Counter()
        real = duckdb.connect

        def connect(*args, **kwargs):
            try:
                return real(*args, **kwargs)
            except duckdb.IOException as exc:
                if "lock" in str(exc).lower():
                    self.conflicts[threading.current_thread().name] += 1
                raise

        monkeypatch.setattr(winnow.store.duckdb, "connect", connect)


class Reader(threading.Thread):
    """The dashboard's reads, in a loop: runs, the newest run, its counts and a page of its queue."""

    def __init__(self, db: Path, pause: float) -> None:
        super().__init__(name="reader", daemon=True)
        self.store = Store(db, lock_timeout=READER_LOCK_TIMEOUT)
        self.pause = pause
        self.stop = threading.Event()
        self.times: list[float] = []
        self.errors: list[BaseException] = []
        self.rows_seen = 0

    def one(self, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # recorded, judged by the test
            self.errors.append(exc)
            return None
        finally:
            self.times.append(time.perf_counter() - started)

    def run(self) -> None:
        while not self.stop.is_set():
            runs = self.one(self.store.list_runs)
            if runs is not None and len(runs):
                run_id = str(runs.iloc[0]["run_id"])
                self.one(self.store.get_run, run_id)
                self.one(self.store.issue_counts, run_id)
                page = self.one(self.store.findings_page, run_id, "outlier", flagged_only=False, limit=24)
                findings = self.one(self.store.findings, run_id, flagged_only=True)
                self.rows_seen += (len(page[0]) if page else 0) + (len(findings) if findings is not None else 0)
            time.sleep(self.pause)


def assert_complete(store: Store, run_id: str, n_items: int) -> None:
    """The run completed with every item scored once for every issue type, and its summary agrees."""
    run = store.get_run(run_id)
    assert run["status"] == "completed", run
    assert set(store.stages(run_id)) == {"ingest", "measure", "embed", "detect"}
    items, findings = store.load_items(run_id), store.findings(run_id)
    assert len(items) == n_items and items["error"].isna().all()
    assert len(findings) == n_items * ISSUE_TYPES and not findings.duplicated(["item_id", "issue_type"]).any()
    assert findings.groupby("issue_type")["item_id"].nunique().eq(n_items).all()
    assert run["counts"]["items"] == n_items and run["counts"]["pairs"] == len(store.pairs(run_id))
    assert run["counts"]["flagged"] == {r.issue_type: int(r.flagged) for r in store.issue_counts(run_id).itertuples()}


def percentiles(times: list[float]) -> str:
    t = np.array(times) * 1000
    return f"n={len(t)} p50={np.percentile(t, 50):.0f} ms p95={np.percentile(t, 95):.0f} ms max={t.max():.0f} ms"


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_two_audits_readers_and_the_dashboard_share_one_file(folders, tmp_path, audit_env, monkeypatch):
    started = time.monotonic()
    db = tmp_path / "shared.duckdb"
    Store(db).initialize()
    spy = LockSpy(monkeypatch)
    monkeypatch.setenv("WINNOW_DB", str(db))

    from playwright.sync_api import sync_playwright

    reader = Reader(db, pause=0.0)
    audits: list[subprocess.Popen] = []
    with dashboard_server(db, env=audit_env) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            assert "no runs yet" in render_dashboard(page, url)

            reader.start()
            audits = [
                subprocess.Popen(
                    [sys.executable, "-m", "winnow.cli", "audit", str(folder), "--db", str(db), "--shard-size", "10", "--batch-size", "5", "--json"],
                    env=audit_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                for folder in folders
            ]
            app_times, http_statuses, renders, texts = [], [], [], []
            while any(a.poll() is None for a in audits):
                t = time.perf_counter()
                at = AppTest.from_file(str(APP), default_timeout=60)
                at.run()
                assert not at.exception, at.exception
                if "run" in at.session_state:  # a run exists: open its triage queue too
                    at.switch_page("views/triage.py").run()
                    assert not at.exception, at.exception
                app_times.append(time.perf_counter() - t)
                with urllib.request.urlopen(url, timeout=30) as response:
                    http_statuses.append(response.status)
                t = time.perf_counter()
                texts.append(render_dashboard(page, url))
                renders.append(time.perf_counter() - t)
            outputs = [a.communicate() for a in audits]
        finally:
            reader.stop.set()
            reader.join(timeout=60)
            for a in audits:
                if a.poll() is None:
                    a.kill()
            browser.close()
    wall = time.monotonic() - started

    for audit, (out, err) in zip(audits, outputs):
        assert audit.returncode == 0, err[-3000:]
    store = Store(db)
    runs = store.list_runs()
    assert len(runs) == 2 and set(runs["status"]) == {"completed"}
    by_source = {Path(r.source).name: r.run_id for r in runs.itertuples()}
    assert_complete(store, by_source[folders[0].name], 80)
    assert_complete(store, by_source[folders[1].name], 60)
    assert store.count_vectors("efficientnet-lite0") == 140
    assert any(run_id in text for text in texts for run_id in by_source.values()), "Chromium never showed a run while the audits ran"

    # after the audits: the dashboard shows both runs
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception and len(at.dataframe) and len(at.dataframe[0].value) == 2

    print(
        f"\nwall {wall:.0f} s; reader: {percentiles(reader.times)}, errors {len(reader.errors)}, rows seen {reader.rows_seen}, "
        f"lock conflicts met (each a retry) {dict(spy.conflicts)}; AppTest runs {percentiles(app_times)}; "
        f"Chromium renders {percentiles(renders)}; HTTP {Counter(http_statuses)}"
    )
    assert not [e for e in reader.errors if not isinstance(e, StoreLocked)], reader.errors[:3]
    assert not reader.errors, f"{len(reader.errors)} reads gave up after {READER_LOCK_TIMEOUT} s: {reader.errors[0]}"
    assert reader.times and app_times and renders and set(http_statuses) == {200}


def hold_write_lock(path: Path) -> subprocess.Popen:
    """Another process that holds the file read-write (like an audit mid-transaction) until a line
    arrives on its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def release_after(holder: subprocess.Popen, seconds: float) -> threading.Timer:
    def release() -> None:
        holder.stdin.write("go\n")
        holder.stdin.flush()

    timer = threading.Timer(seconds, release)
    timer.start()
    return timer


def test_a_writer_that_cannot_get_the_lock_says_what_to_do_and_one_that_waits_gets_in(tmp_path):
    store = Store(tmp_path / "locked.duckdb")
    run_id = store.create_run(dataset="d", source="s", modality="image", config={})
    holder = hold_write_lock(store.path)
    try:
        impatient = Store(store.path, lock_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StoreLocked) as raised:
            impatient.mark_stage(run_id, "ingest")
        assert 0.5 <= time.monotonic() - started < 5
        message = str(raised.value)
        assert str(store.path) in message and "locked by another process" in message
        assert "wait for the running audit to finish" in message and "another --db" in message
        with pytest.raises(StoreLocked):
            impatient.list_runs()  # readers too: nobody can open the file while a writer holds it

        started = time.monotonic()
        release_after(holder, 1.0)
        Store(store.path, lock_timeout=30).mark_stage(run_id, "ingest")  # retries until the holder lets go
        assert time.monotonic() - started >= 1.0
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.wait()
    assert set(store.stages(run_id)) == {"ingest"}


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_several_reviewers_at_once_each_get_their_page(tmp_path):
    """Three Chromium sessions load the triage queue of a 2,000-finding run at the same time, twice
    each; every load renders without an error (``make bench-reliability``: 20 sessions, 100k findings)."""
    from bench.loadtest import load_pages
    from bench.run_dashboard import ISSUE, build_run

    db = tmp_path / "many.duckdb"
    run_id = build_run(db, 2_000, seed=0)
    with dashboard_server(db) as url:
        load = load_pages(f"{url}triage?run={run_id}", f"matching {ISSUE} findings", sessions=3, rounds=2)
    print(f"\n3 sessions × 2 loads: {load.summary()}")
    assert load.errors == [] and len(load.times) == 6
