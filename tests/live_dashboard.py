"""The real dashboard in a real browser, for tests, benchmarks and the screenshots: ``winnow
dashboard`` started as a subprocess on a free port, and Debian's Chromium driven by Playwright
(no browser download; ``.ci/run`` installs the ``chromium`` package)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCRIPT_DONE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"  # the app's script has finished
NO_CHROMIUM = "needs Debian's chromium (apt-get install chromium); .ci/run installs it"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60) -> int:
    """The HTTP status of ``url`` once it answers (retrying until ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@contextmanager
def _serving(command: list[str], port: int, env: dict[str, str], cwd: Path | None = None) -> Iterator[str]:
    """Run ``command`` (a server on ``port``) until it is healthy; yield its base URL (ending in ``/``)."""
    server = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url + "_stcore/health")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def dashboard_server(db: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``winnow dashboard --db DB`` on a free port, healthy; yields its base URL (ending in ``/``)."""
    port = free_port()
    command = [sys.executable, "-m", "winnow.cli", "dashboard", "--db", str(db), "--port", str(port)]
    with _serving(command, port, {**(env or os.environ), "WINNOW_DB": str(db)}) as url:
        yield url


@contextmanager
def streamlit_server(app: Path, db: Path, options: dict[str, str] | None = None, *, path_first: Path | None = None) -> Iterator[str]:
    """``streamlit run APP`` on a free port with ``winnow dashboard``'s server options, or with
    ``options`` instead; ``path_first`` goes first on ``PYTHONPATH`` (a folder with another
    ``dashboard`` package, to serve an older version). For benchmarks that compare them."""
    from dashboard.serving import streamlit_command

    port = free_port()
    env = {**os.environ, "WINNOW_DB": str(db)}
    if path_first is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path_first), str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    with _serving(streamlit_command(app, "127.0.0.1", port, options), port, env, cwd=path_first) as url:  # `-m` puts the cwd first
        yield url


def render_dashboard(page, url: str) -> str:
    """Load the real dashboard in Chromium and return the rendered text once the app has run."""
    page.goto(url)
    page.wait_for_selector("text=Database:", timeout=60_000)
    page.wait_for_function(SCRIPT_DONE, timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[-2000:]
    return page.inner_text("body")
