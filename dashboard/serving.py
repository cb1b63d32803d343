"""How ``winnow dashboard`` starts Streamlit: the command line and the server options that keep a
page's first render fast. Standard library only, so the CLI can import it without Streamlit."""

from __future__ import annotations

import sys
from pathlib import Path

SERVER_OPTIONS = {
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    # Streamlit's source watcher re-walks every imported module after each script run, on the
    # server's event loop, and its forced full garbage collection after each run holds the
    # interpreter while the page's last messages wait to be sent; the dashboard's code does not
    # change while it runs, and Python collects garbage anyway (bench/results/dashboard.md).
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "runner.postScriptGC": "false",
    # The viewer toolbar drops the developer menu (Deploy, clear cache) and keeps the running
    # indicator ("minimal" would hide that too).
    "client.toolbarMode": "viewer",
}


def streamlit_command(app: Path, host: str, port: int, options: dict[str, str] | None = None) -> list[str]:
    """``python -m streamlit run APP`` on ``host:port`` with :data:`SERVER_OPTIONS` (or ``options``)."""
    flags = [item for key, value in (SERVER_OPTIONS if options is None else options).items() for item in (f"--{key}", value)]
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", host, "--server.port", str(port), *flags]
