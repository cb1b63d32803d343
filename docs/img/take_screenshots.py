"""Regenerate the dashboard screenshots in this folder from the demo datasets.

Usage, from the repository root (needs Debian's ``chromium`` and about three minutes)::

    winnow demo --out /tmp/demo_dash
    winnow audit /tmp/demo_dash/images --db /tmp/demo_dash/winnow.duckdb --name demo-images --reference previous
    winnow filter /tmp/demo_dash/texts.jsonl --out /tmp/demo_dash/filtered --id-key id --name demo-texts-filter \
        --db /tmp/demo_dash/winnow.duckdb
    PYTHONPATH=. python docs/img/take_screenshots.py /tmp/demo_dash [DB]   # DB: default /tmp/demo_dash/winnow.duckdb

The second audit re-reads the images (every vector comes from the cache) and tests them for drift
against the first, so the Runs page has a cache hit rate and a drift finding to show; the filter
run of the demo texts gives the Removals page its exact and near copies. The script records a few
decisions as reviewer "ada" (the planted off-topic texts among the top 30 confirmed, the rest
dismissed, so re-ranking has something to learn), starts ``winnow dashboard`` and saves one PNG per
page with Playwright driving headless Chromium.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.live_dashboard import CHROMIUM, CHROMIUM_ARGS, dashboard_server
from winnow.store import Store

HERE = Path(__file__).resolve().parent


def record_decisions(store: Store, demo: Path) -> dict[str, str]:
    """Decisions a reviewer might have made; returns the run id of each demo dataset (newest run)."""
    runs: dict[str, str] = {}
    for row in store.list_runs().sort_values("started").itertuples():
        runs[row.dataset] = row.run_id
    if "demo-texts-filter" not in runs:
        raise SystemExit("no demo-texts-filter run in the database: run the `winnow filter` line of this script's docstring first")
    truth = json.loads((demo / "truth.json").read_text())
    texts = runs["demo-texts"]
    planted = {p["item"] for p in truth["texts"]["off_topic"]}
    top = store.findings(texts, issue_type="off_topic").head(30)["item_id"]
    store.record_decisions(texts, [i for i in top if i in planted], "off_topic", "confirmed", reviewer="ada")
    store.record_decisions(texts, [i for i in top if i not in planted], "off_topic", "dismissed", reviewer="ada")
    images = runs["demo-images"]
    wrong = {p["item"] for p in truth["images"]["label_error"]}
    band = store.findings(images, issue_type="label_error").iloc[40:52]["item_id"]
    store.record_decisions(images, [i for i in band if i in wrong], "label_error", "confirmed", reviewer="ada")
    store.record_decisions(images, [i for i in band if i not in wrong], "label_error", "dismissed", reviewer="ada")
    return runs


def settle(page: Page) -> None:
    """Wait until the script has finished (no running indicator twice in a row) and every image decoded."""
    page.wait_for_selector("text=Database:", timeout=60_000)
    idle = 0
    while idle < 2:
        time.sleep(0.75)
        idle = idle + 1 if page.locator('[data-testid="stStatusWidget"]').count() == 0 else 0
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
    page.mouse.move(5, 5)  # no tooltip in the picture
    time.sleep(1.0)


def shoot(page: Page, url: str, name: str, *, before=None, height: int | None = None) -> None:
    """Open ``url``, do ``before``, and save the window (``height`` pixels tall: Streamlit scrolls
    inside its own container, so a full-page shot would not show more)."""
    size = page.viewport_size
    if height:
        page.set_viewport_size({"width": size["width"], "height": height})
    page.goto(url)
    settle(page)
    if before is not None:
        before(page)
        settle(page)
    page.screenshot(path=str(HERE / name))
    page.set_viewport_size(size)
    print("wrote", HERE / name)


def main(demo: Path, db: Path) -> None:
    runs = record_decisions(Store(db), demo)
    with dashboard_server(db) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        images, texts = runs["demo-images"], runs["demo-texts"]
        shoot(page, f"{base}?run={images}", "dashboard.png")
        shoot(page, f"{base}triage?run={images}", "dashboard-triage.png")

        def rerank(p: Page) -> None:
            p.get_by_text("Re-rank undecided items by my decisions").click()
            settle(p)
            p.get_by_role("button", name="Estimate reviews saved").click()

        def off_topic(p: Page) -> None:
            p.locator(".st-key-queue_issue").click()
            p.get_by_role("option", name=re.compile("^off_topic")).click()

        page.goto(f"{base}triage?run={texts}")
        settle(page)
        off_topic(page)
        settle(page)
        page.get_by_text("Everything, highest score first").click()
        settle(page)
        page.get_by_text("flagged only").click()
        settle(page)
        rerank(page)
        settle(page)
        page.screenshot(path=str(HERE / "dashboard-rerank.png"))
        print("wrote", HERE / "dashboard-rerank.png")

        shoot(page, f"{base}duplicates?run={images}", "dashboard-duplicates.png",
              before=lambda p: p.get_by_text("near_duplicate (").click())
        shoot(page, f"{base}label_errors?run={images}", "dashboard-label-errors.png")

        def region(p: Page) -> None:
            box = p.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.bounding_box()
            p.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.15)
            p.mouse.down()
            p.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] * 0.6, steps=8)
            p.mouse.up()

        shoot(page, f"{base}map?run={images}", "dashboard-map.png", before=region)
        shoot(page, f"{base}item?run={images}&item=shirt/digit_6.png", "dashboard-item.png")

        def table_queue(p: Page) -> None:
            p.locator(".st-key-queue_issue").click()
            p.get_by_role("option", name=re.compile("^corrupt")).click()
            p.locator("h1").click()  # no focus ring on the select box in the picture

        shoot(page, f"{base}triage?run={runs['demo-wine']}", "dashboard-table.png", before=table_queue)

        def near_copy(p: Page) -> None:
            p.locator(".st-key-removals_stage").click()
            p.get_by_role("option", name=re.compile("^minhash")).click()
            settle(p)
            grid = p.locator("[data-testid='stDataFrame']").first.bounding_box()
            p.mouse.click(grid["x"] + 14, grid["y"] + 35 + 17)  # the first row's selection cell

        shoot(page, f"{base}removals?run={runs['demo-texts-filter']}", "dashboard-removals.png", before=near_copy, height=1500)
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path(sys.argv[1]) / "winnow.duckdb")
