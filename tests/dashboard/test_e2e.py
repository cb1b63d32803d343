"""End to end: the real ``winnow dashboard`` in headless Chromium (Playwright driving Debian's
``chromium``) records decisions by a click and by a keyboard shortcut, and the rows land in DuckDB.

``.ci/run`` installs Chromium, so CI always runs this; elsewhere it is skipped when no Chromium exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import fashion_images
from tests.live_dashboard import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, dashboard_server, render_dashboard
from winnow.datasets.model import items_frame
from winnow.findings import empty_pairs, make_findings
from winnow.store import Store

def _demo_run(db: Path, folder: Path) -> tuple[str, list[str]]:
    """Twelve real Fashion-MNIST images with off_topic scores (the top four flagged), through the store."""
    folder.mkdir()
    ids = []
    for k, (pixels, label) in enumerate(fashion_images(4, classes=(0, 1, 7))):
        (folder / label).mkdir(exist_ok=True)
        Image.fromarray(pixels).save(folder / label / f"{k:02d}.png")
        ids.append(f"{label}/{k:02d}.png")
    items = items_frame([{"item_id": i, "modality": "image", "uri": str(folder / i), "content_hash": i, "label": i.split("/")[0]}
                         for i in ids])
    scores = [1 - k / len(ids) for k in range(len(ids))]
    findings = make_findings(ids, "off_topic", scores, [k < 4 for k in range(len(ids))],
                             [f"far from every class (z {4 - k})" if k < 4 else None for k in range(len(ids))], [{}] * len(ids))
    store = Store(db)
    run_id = store.create_run(dataset="e2e", source=str(folder), modality="image", config={})
    store.save_items(run_id, items)
    store.save_results(run_id, findings, empty_pairs())
    store.finish_run(run_id, status="completed", counts={"items": len(ids), "flagged": {"off_topic": 4}})
    return run_id, ids


def _key_class(key: str) -> str:
    """The CSS class Streamlit gives the element of a widget with ``key`` (non-alphanumerics become '-')."""
    return "st-key-" + "".join(c if c.isalnum() or c in "_-" else "-" for c in key)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_a_reviewer_records_decisions_by_click_and_by_keyboard_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    db = tmp_path / "e2e.duckdb"
    run_id, ids = _demo_run(db, tmp_path / "images")
    with dashboard_server(db) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        text = render_dashboard(page, f"{url}triage?run={run_id}")
        assert "Triage queue" in text and "4 matching off_topic findings" in text

        reviewer = page.get_by_role("textbox", name="Reviewer")
        reviewer.fill("e2e-reviewer")
        reviewer.press("Enter")
        page.locator(f".{_key_class(f'pick_0_off_topic_{ids[0]}')} label").click()  # tick the top item
        page.get_by_role("button", name="Confirm 1").click()
        page.get_by_text("Recorded confirmed for 1 off_topic item(s).").wait_for(timeout=30_000)

        page.locator(f".{_key_class(f'pick_1_off_topic_{ids[1]}')} label").click()  # tick the next one …
        page.get_by_role("button", name="Keep 1").wait_for(timeout=30_000)
        page.locator("h1").click()  # … move the focus off the tick box, and press K
        page.keyboard.press("k")
        page.get_by_text("Recorded keep for 1 off_topic item(s).").wait_for(timeout=30_000)
        browser.close()

    decisions = Store(db).decisions_for(run_id).set_index("item_id")
    assert decisions.loc[ids[0], ["issue_type", "decision", "reviewer"]].tolist() == ["off_topic", "confirmed", "e2e-reviewer"]
    assert decisions.loc[ids[1], ["issue_type", "decision", "reviewer"]].tolist() == ["off_topic", "keep", "e2e-reviewer"]
    assert len(decisions) == 2
