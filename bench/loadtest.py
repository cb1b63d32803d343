"""Many reviewers at once: real browser sessions on one live dashboard, timed until each page has
rendered. Used by the concurrency test (a few sessions, small run) and by ``make bench-reliability``
(20 sessions on a 100k-finding run).

Every session is its own Chromium browser context (its own Streamlit session and websocket), all
driven from one asyncio loop so their page loads overlap. A page counts as rendered when the app's
script has finished (Streamlit's status widget is gone) and the page shows ``marker``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from tests.live_dashboard import CHROMIUM, CHROMIUM_ARGS, SCRIPT_DONE



@dataclass
class Load:
    """Page times (seconds) of every load, and the loads that failed (with why)."""

    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.times, q)) if self.times else float("nan")

    def summary(self) -> dict[str, float | int]:
        return {"loads": len(self.times), "failed": len(self.errors), "p50_s": round(self.percentile(50), 3),
                "p95_s": round(self.percentile(95), 3), "max_s": round(max(self.times, default=float("nan")), 3)}


async def _session(browser, url: str, marker: str, rounds: int, timeout_ms: int, load: Load) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            try:
                await page.goto(url)
                await page.wait_for_selector(f"text={marker}", timeout=timeout_ms)
                await page.wait_for_function(SCRIPT_DONE, timeout=timeout_ms)
                if await page.locator('[data-testid="stException"]').count():
                    load.errors.append("the app raised: " + (await page.inner_text("body"))[-500:])
                    continue
                load.times.append(time.perf_counter() - started)
            except Exception as exc:  # a timeout or a dropped connection: recorded, judged by the caller
                load.errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        await context.close()


async def _run(url: str, marker: str, sessions: int, rounds: int, timeout_ms: int) -> Load:
    from playwright.async_api import async_playwright

    load = Load()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            await asyncio.gather(*(_session(browser, url, marker, rounds, timeout_ms, load) for _ in range(sessions)))
        finally:
            await browser.close()
    return load


def load_pages(url: str, marker: str, *, sessions: int, rounds: int = 3, timeout_s: float = 120) -> Load:
    """Open ``url`` in ``sessions`` concurrent browser sessions, ``rounds`` times each; time every load."""
    return asyncio.run(_run(url, marker, sessions, rounds, int(timeout_s * 1000)))
