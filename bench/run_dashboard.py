"""``make bench-dashboard``: the triage queue's first render on a run with 100,000 findings, and the
reviews the active-learning re-rank saves on the demo datasets.

Usage: ``python -m bench.run_dashboard [--findings 100000] [--repeats 5] [--demo DIR] [--before DIR]
[--work bench/work] [--out bench/results]`` from the repository root; writes ``dashboard.md`` and
``dashboard.json``.

1. Build ``bench/work/dashboard/dashboard.duckdb`` afresh through the Store API: one text run with
   ``--findings`` items (short texts, ten labels) and one ``outlier`` finding each (seeded
   log-normal scores, the detector's threshold recorded in ``detail`` so the unsure band — the
   queue's default view — is computed on every render, 5 % flagged, a reason per flagged item),
   and 1,000 decisions on the highest-scored items, so the decisions join has work to do.
2. Peer, in the same process on the same file: a plain pandas read — DuckDB → pandas of every
   finding of the issue type joined with its item, sorted by score, first page taken — what a
   dashboard without paging in SQL would do for one page.
3. AppTest, the page's script without a browser: a new ``AppTest`` per repetition opens the triage
   page directly (sidebar, band and the first page of 24), first with Streamlit's caches cleared
   (the server's first render of the queue; the first repetition also pays the process's imports
   and is reported on its own), then with them kept (a new session on a server that has shown
   the queue: the dashboard keys its caches by the run's version from ``Store.runs_with_versions``,
   so only that one cheap read of the run list is repeated).
4. Chromium (when Debian's ``/usr/bin/chromium`` exists), three servers side by side: ``winnow
   dashboard``; a one-line Streamlit app with the same server options (Streamlit's own floor); and
   the dashboard with Streamlit's default server options (as ``winnow dashboard`` started it before);
   with ``--before DIR``, a fourth: the ``dashboard`` package in DIR (an older version, e.g. from
   ``git archive HEAD~1 dashboard | tar -x -C DIR``) with those default options.
   Each repetition loads, interleaved, the triage page (until the queue's caption shows and the
   script has finished), the Export page (the app's floor) and the one-line app on each, once as a
   returning reviewer (one browser context: the hashed front-end files come from the cache) and
   once as a first visit (a new context per load). The websocket's opening and the last message
   before the script finished split each load into front-end boot, server and drawing. The first
   load of each server is reported on its own.
5. With ``--demo DIR`` (a folder from ``winnow demo --out DIR``: ``winnow.duckdb`` and
   ``truth.json``): for every issue type with planted truth, a reviewer with perfect knowledge of
   the planted items is replayed over the whole queue (:func:`detectors.rerank.simulate_review`,
   retraining after every 10 reviews): reviews needed to find 80 % and all of the planted issues,
   in the detector's order and re-ranked.

Timings are wall seconds (``perf_counter``) on whatever else the machine is doing; the ratios to the
peer and to the floor, measured in the same run, are what to compare across runs. The goal: first
render under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from tests.live_dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCRIPT_DONE,
    dashboard_server,
    streamlit_server,
)
from winnow.datasets.model import items_frame
from winnow.findings import empty_pairs, make_findings
from winnow.store import Store

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
GOAL_SECONDS = 2.0
PAGE = 24
DECISIONS = 1_000
ISSUE = "outlier"


def build_run(db: Path, n: int, seed: int) -> str:
    """The benchmark run (see the module docstring, step 1); returns its id."""
    rng = np.random.default_rng(seed)
    ids = [f"doc-{k:06d}" for k in range(n)]
    labels = [f"class_{k % 10}" for k in range(n)]
    items = items_frame([{"item_id": i, "modality": "text", "text": f"review {k}: " + "a sentence of text " * 6, "label": label,
                          "content_hash": f"h{k}"} for k, (i, label) in enumerate(zip(ids, labels))])
    scores = rng.lognormal(0.0, 0.5, n)
    threshold = float(np.quantile(scores, 0.95))
    flagged = scores >= threshold
    reasons = [f"far from its neighbours (score {s:.3f} >= {threshold:.3f})" if f else None for s, f in zip(scores, flagged)]
    findings = make_findings(ids, ISSUE, scores, flagged, reasons, [{"threshold": threshold}] * n)
    store = Store(db)
    run_id = store.create_run(dataset="bench-dashboard", source=str(db.parent / "texts.jsonl"), modality="text", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, empty_pairs())
    store.finish_run(run_id, status="completed", counts={"items": n, "flagged": {ISSUE: int(flagged.sum())}})
    top = [ids[i] for i in np.argsort(-scores)[:DECISIONS]]
    store.record_decisions(run_id, top[::2], ISSUE, "confirmed", reviewer="bench")
    store.record_decisions(run_id, top[1::2], ISSUE, "dismissed", reviewer="bench")
    return run_id


def pandas_page(db: Path, run_id: str) -> float:
    """The peer: every finding of the issue type joined with its item into pandas, sorted, first page."""
    started = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = con.execute(
            "SELECT f.*, i.label, i.uri, i.text, i.content_hash, i.metadata, i.error FROM findings f "
            "LEFT JOIN items i USING (run_id, item_id) WHERE f.run_id = ? AND f.issue_type = ?", [run_id, ISSUE]
        ).df()
    finally:
        con.close()
    page = frame.sort_values(["score", "item_id"], ascending=[False, True]).head(PAGE)
    assert len(page) == PAGE
    return time.perf_counter() - started


def apptest_render(run_id: str, *, clear: bool = True) -> float:
    """One render of the triage page in a new ``AppTest`` session: with Streamlit's caches cleared
    (the server's first render of this queue), or kept (a new session on a server that has shown
    the queue before: what a reviewer opening another tab gets)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    if clear:
        st.cache_data.clear()
        st.cache_resource.clear()
    started = time.perf_counter()
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["run"] = run_id
    at.switch_page("views/triage.py")
    at.run()
    elapsed = time.perf_counter() - started
    assert not at.exception, at.exception
    assert any("matching outlier findings" in c.value for c in at.caption), [c.value for c in at.caption]
    return elapsed


@dataclass
class Load:
    """One page load in Chromium, seconds from ``goto``: the websocket opened (the front end has
    booted), the last message before the script finished arrived, the content showed, the
    script finished (the running indicator went away)."""

    socket: float
    last_message: float
    content: float
    done: float


def load_once(context, url: str, text: str) -> Load:
    """Open ``url`` in a new page of ``context`` and time it (see :class:`Load`)."""
    page = context.new_page()
    marks: dict[str, float] = {}
    messages: list[float] = []
    started = time.perf_counter()

    def on_socket(socket) -> None:
        marks.setdefault("socket", time.perf_counter() - started)
        socket.on("framereceived", lambda _: messages.append(time.perf_counter() - started))

    page.on("websocket", on_socket)
    page.goto(url)
    page.get_by_text(text).first.wait_for(timeout=120_000)
    content = time.perf_counter() - started
    page.wait_for_function(SCRIPT_DONE, timeout=120_000)
    done = time.perf_counter() - started
    page.close()
    return Load(marks.get("socket", float("nan")), max([m for m in messages if m <= done], default=float("nan")), content, done)


EMPTY_APP = 'import streamlit as st\n\nst.title("ready")\n'
TARGETS = {
    # name: (server, path, text that shows the page's content)
    "triage": ("winnow", "triage?run={run}", "matching outlier findings"),
    "app_floor": ("winnow", "export?run={run}", "Prepare export"),
    "streamlit_floor": ("empty", "", "ready"),
    "triage_defaults": ("defaults", "triage?run={run}", "matching outlier findings"),
}
"""What each browser measurement loads: the queue; the app's floor (its Export page: the sidebar, a
form and no queue); Streamlit's floor (a one-line app, served with the same options); the queue
served with Streamlit's default options (what ``winnow dashboard`` used before)."""
DEFAULT_OPTIONS = {"server.headless": "true", "browser.gatherUsageStats": "false"}
BEFORE = ("before", "triage?run={run}", "matching outlier findings")
"""With ``--before DIR``: the triage page of the ``dashboard`` package in DIR (an older version,
e.g. ``git archive HEAD~1 dashboard | tar -x -C DIR``), served with Streamlit's default options."""


def chromium_renders(db: Path, run_id: str, repeats: int, work: Path, before: Path | None = None) -> dict[str, Any]:
    """Time-to-content in headless Chromium for every :data:`TARGETS` entry, three servers side by
    side and the loads interleaved (so a change of machine load hits all alike), once as a
    returning reviewer (one browser context: Streamlit's hashed front-end files come from the
    browser cache) and once as a first visit (a new context, empty cache, per load). The first
    load of each server (imports, cold caches) is reported on its own."""
    from playwright.sync_api import sync_playwright

    empty = work / "empty_app.py"
    empty.write_text(EMPTY_APP)
    targets = {**TARGETS, **({"triage_before": BEFORE} if before else {})}
    loads: dict[str, dict[str, list[Load]]] = {mode: {name: [] for name in targets} for mode in ("returning", "first_visit")}
    cold: dict[str, float] = {}
    loadavg: list[float] = []
    with ExitStack() as stack:
        urls = {"winnow": stack.enter_context(dashboard_server(db)),
                "empty": stack.enter_context(streamlit_server(empty, db)),
                "defaults": stack.enter_context(streamlit_server(APP, db, DEFAULT_OPTIONS))}
        if before:
            urls["before"] = stack.enter_context(streamlit_server(before / "dashboard" / "app.py", db, DEFAULT_OPTIONS, path_first=before))
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        viewport = {"width": 1400, "height": 1000}
        returning = browser.new_context(viewport=viewport)
        for name, (server, path, text) in targets.items():  # each server's first load: imports, empty caches
            if server not in {targets[n][0] for n in cold}:
                cold[name] = load_once(returning, urls[server] + path.format(run=run_id), text).content
        for _ in range(repeats):
            for mode in ("returning", "first_visit"):
                for name, (server, path, text) in targets.items():
                    context = returning if mode == "returning" else browser.new_context(viewport=viewport)
                    loads[mode][name].append(load_once(context, urls[server] + path.format(run=run_id), text))
                    if context is not returning:
                        context.close()
                    loadavg.append(os.getloadavg()[0])
        browser.close()
    return {"loads": {mode: {name: [asdict(x) for x in runs] for name, runs in per.items()} for mode, per in loads.items()},
            "cold": cold, "loadavg": loadavg}


def demo_reviews_saved(demo: Path) -> list[dict[str, Any]]:
    """Step 5 of the module docstring: per demo dataset and issue type with planted truth."""
    from detectors.rerank import review_features, reviews_to_find, simulate_review
    from winnow.stages import load_vectors

    store = Store(demo / "winnow.duckdb")
    truth = json.loads((demo / "truth.json").read_text())
    rows = []
    for run in store.list_runs().itertuples():
        planted_sets = truth.get(run.dataset.removeprefix("demo-"), {})
        model_id = store.stages(run.run_id).get("embed", {}).get("model_id")
        if not model_id:
            continue
        embedded, vectors = load_vectors(store, store.load_items(run.run_id), model_id)
        row_of = dict(zip(embedded["item_id"], range(len(embedded))))
        for issue_type, planted in planted_sets.items():
            findings = store.findings(run.run_id, issue_type=issue_type)
            findings = findings[findings["item_id"].isin(row_of)]
            real = findings["item_id"].isin({p["item"] if isinstance(p, dict) else p for p in planted}).to_numpy()
            if not real.any():
                continue
            features = review_features(vectors[[row_of[i] for i in findings["item_id"]]])
            curve = simulate_review(features, findings["score"].to_numpy(), real, batch=10)
            row = {"dataset": run.dataset, "issue_type": issue_type, "queue": len(real), "planted": int(real.sum())}
            for share in (0.8, 1.0):
                target = int(np.ceil(share * real.sum()))
                row[f"detector_{share:.0%}"] = reviews_to_find(curve.detector, target)
                row[f"reranked_{share:.0%}"] = reviews_to_find(curve.reranked, target)
                row[f"saved_{share:.0%}"] = curve.saved(target)
            rows.append(row)
            print(f"  {run.dataset} {issue_type}: {row}", flush=True)
    return rows


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


LABELS = {
    "triage": "triage queue, `winnow dashboard`",
    "app_floor": "app floor: the Export page (sidebar and a form, no queue)",
    "streamlit_floor": "Streamlit floor: a one-line app, same server options",
    "triage_defaults": "triage queue, Streamlit's default server options",
    "triage_before": "triage queue before this change ({before}), Streamlit's default options",
}


def browser_medians(result: dict[str, Any], mode: str, field: str = "done") -> dict[str, float]:
    """Median of one :class:`Load` field per target, for one browser mode."""
    return {name: median([load[field] for load in loads]) for name, loads in result["chromium"]["loads"][mode].items()}


def report(result: dict[str, Any]) -> str:
    """The markdown results."""
    r = result
    peer = r["peer_s"]
    lines = [
        "# Dashboard: first render of the triage queue at 100k findings",
        "",
        f"Measured {r['when']} on {r['machine']} by `{r.get('command', 'make bench-dashboard')}` (`bench/run_dashboard.py`; how, in its docstring).",
        f"Run: {r['findings']:,} `{ISSUE}` findings ({r['flagged']:,} flagged, {DECISIONS:,} decided) in a fresh DuckDB file "
        f"built in {r['build_s']:.1f} s. Goal: the queue page's first render under {GOAL_SECONDS:.0f} s.",
        f"Load average (1 min) {r['load_average']:.1f} at the start"
        + (f", {min(r['chromium']['loadavg']):.1f}–{max(r['chromium']['loadavg']):.1f} (median "
           f"{median(r['chromium']['loadavg']):.1f}) during the browser loads" if r.get("chromium") else "")
        + f" on {r['machine']}: other jobs shared the machine, so compare the ratios, which were measured side by side.",
        "",
        "## The page's script (Streamlit's AppTest, no browser)",
        "",
        "| what | median s | runs | ratio to the pandas peer |",
        "|---|---|---|---|",
        f"| peer: plain pandas read of the same findings (join, sort, first page) | {peer:.3f} | {len(r['peer_runs'])} | 1.0 |",
        f"| triage page, first render on the server (caches cleared) | {r['apptest_s']:.3f} | {len(r['apptest_runs'])} | {r['apptest_s'] / peer:.1f} |",
        f"| triage page, a new session on a server that has shown it (caches kept) | {r['apptest_warm_s']:.3f} | "
        f"{len(r['apptest_warm_runs'])} | {r['apptest_warm_s'] / peer:.1f} |",
        f"| triage page, first render in a fresh process (imports included) | {r['apptest_cold_s']:.3f} | 1 | {r['apptest_cold_s'] / peer:.1f} |",
    ]
    if not r.get("chromium"):
        lines += ["", "Chromium was not measured: no `/usr/bin/chromium` on this machine."]
    else:
        returning, first = browser_medians(r, "returning"), browser_medians(r, "first_visit")
        runs = len(r["chromium"]["loads"]["returning"]["triage"])
        lines += [
            "",
            "## In Chromium: from opening the link until the content shows and the script has finished",
            "",
            f"Medians of {runs} loads each, interleaved. *Returning reviewer*: one browser, so Streamlit's front-end files "
            "(hashed, cached for a year) come from its cache; *first visit*: a new browser profile per load, every file downloaded.",
            "",
            "| page | returning reviewer, s | ratio to the Streamlit floor | first visit, s | ratio to the Streamlit floor | "
            "returning, ratio to the pandas peer |",
            "|---|---|---|---|---|---|",
        ]
        for name, label in LABELS.items():
            if name not in returning:
                continue
            label = label.format(before=r.get("before_name", ""))
            lines.append(f"| {label} | {returning[name]:.3f} | {returning[name] / returning['streamlit_floor']:.2f} | {first[name]:.3f} | "
                         f"{first[name] / first['streamlit_floor']:.2f} | {returning[name] / peer:.1f} |")
        cold = r["chromium"]["cold"]
        servers = {"triage": "`winnow dashboard`", "streamlit_floor": "the one-line app", "triage_defaults": "default options",
                   "triage_before": "before this change"}
        lines += ["", "First load after each server starts (imports, empty caches; one load each): "
                  + ", ".join(f"{servers[name]} {seconds:.2f} s" for name, seconds in cold.items()) + "."]
        socket = browser_medians(r, "returning", "socket")
        last = browser_medians(r, "returning", "last_message")
        lines += [
            "",
            "### Where the time goes (returning reviewer, medians)",
            "",
            "| page | front end boots (websocket open) | server runs the script (until its last message) | browser draws the rest |",
            "|---|---|---|---|",
        ]
        for name in ("triage", "streamlit_floor", "triage_defaults", "triage_before"):
            if name not in returning:
                continue
            lines.append(f"| {LABELS[name].format(before=r.get('before_name', ''))} | {socket[name]:.2f} | {last[name] - socket[name]:.2f} | {returning[name] - last[name]:.2f} |")
        verdict = "within" if returning["triage"] < GOAL_SECONDS else "over"
        lines += [
            "",
            f"A returning reviewer has the queue on screen in {returning['triage']:.2f} s ({verdict} the {GOAL_SECONDS:.0f} s goal), "
            f"{returning['triage'] - returning['streamlit_floor']:+.2f} s over a one-line Streamlit app served the same way "
            f"({returning['streamlit_floor']:.2f} s, which no page can go below); a first visit, which also downloads "
            f"Streamlit's front end, takes {first['triage']:.2f} s ({first['triage'] - first['streamlit_floor']:+.2f} s over its floor). "
            f"With Streamlit's default server options the same page took {returning['triage_defaults']:.2f} s "
            f"(ratio {returning['triage'] / returning['triage_defaults']:.2f})"
            + (f", and the dashboard before this change {returning['triage_before']:.2f} s (ratio "
               f"{returning['triage'] / returning['triage_before']:.2f})." if "triage_before" in returning else "."),
        ]
    if r.get("demo"):
        lines += [
            "",
            "## Reviews saved by re-ranking on the demo datasets",
            "",
            "A reviewer who knows the planted issues reads each whole queue, 10 items between retrainings "
            "(`detectors.rerank.simulate_review`); reviews needed to find 80 % and all of the planted issues:",
            "",
            "| dataset | issue type | queue | planted | detector 80 % | re-ranked 80 % | saved | detector all | re-ranked all | saved |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for d in r["demo"]:
            lines.append(f"| {d['dataset']} | {d['issue_type']} | {d['queue']} | {d['planted']} | {d['detector_80%']} | {d['reranked_80%']} | "
                         f"{d['saved_80%']} | {d['detector_100%']} | {d['reranked_100%']} | {d['saved_100%']} |")
        lines += ["", "The model's weight is earned on held-out decisions, so where the embeddings do not predict the reviewer's "
                  "decisions (label errors, duplicates) it stays near the detector's order instead of costing reviews."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--demo", type=Path, help="a `winnow demo --out` folder: also replay reviews on it")
    parser.add_argument("--before", type=Path, help="a folder with an older `dashboard` package: also time its triage page")
    parser.add_argument("--before-name", default="an older version", help="what --before holds, for the report (e.g. a commit)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)

    work = args.work / "dashboard"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "dashboard.duckdb"
    os.environ["WINNOW_DB"] = str(db)
    started = time.perf_counter()
    run_id = build_run(db, args.findings, args.seed)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": f"{os.cpu_count()} CPU cores",
        "command": " ".join(["python -m bench.run_dashboard", *(sys.argv[1:] if argv is None else argv)]),
        "load_average": os.getloadavg()[0],
        "findings": args.findings, "build_s": time.perf_counter() - started,
        "flagged": int(Store(db).issue_counts(run_id)["flagged"].sum()),
    }
    print(f"built run {run_id} with {args.findings:,} findings in {result['build_s']:.1f} s", flush=True)

    result["peer_runs"] = [pandas_page(db, run_id) for _ in range(args.repeats)]
    result["peer_s"] = median(result["peer_runs"])
    runs = [apptest_render(run_id) for _ in range(args.repeats + 1)]
    result["apptest_cold_s"], result["apptest_runs"] = runs[0], runs[1:]
    result["apptest_s"] = median(result["apptest_runs"])
    result["apptest_warm_runs"] = [apptest_render(run_id, clear=False) for _ in range(args.repeats)]
    result["apptest_warm_s"] = median(result["apptest_warm_runs"])
    print(f"peer {result['peer_s']:.3f} s; AppTest first render {result['apptest_s']:.3f} s (cold process {runs[0]:.3f} s, "
          f"caches kept {result['apptest_warm_s']:.3f} s)", flush=True)
    if CHROMIUM.exists():
        result["chromium"] = chromium_renders(db, run_id, args.repeats, work, args.before)
        if args.before:
            result["before_name"] = args.before_name
        for mode in ("returning", "first_visit"):
            print(mode, {name: round(seconds, 3) for name, seconds in browser_medians(result, mode).items()}, flush=True)
    if args.demo:
        result["demo"] = demo_reviews_saved(args.demo)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dashboard.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "dashboard.md").write_text(report(result))
    print(f"wrote {args.out / 'dashboard.md'}")


if __name__ == "__main__":
    main()
