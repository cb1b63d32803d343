"""A Prefect API that is down: ``winnow audit`` and ``winnow serve`` stop at once with exit 2 and a
message that says what to do, before a run is opened, instead of a traceback from Prefect's engine.
(Without PREFECT_API_URL, Prefect's temporary local server is used and this does not arise.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.live_dashboard import free_port
from winnow.store import Store


@pytest.mark.parametrize("verb", ["audit", "serve"])
def test_an_unreachable_prefect_api_is_a_clear_error_and_opens_no_run(tmp_path, text_jsonl, verb):
    db = tmp_path / "d.duckdb"
    Store(db).initialize()
    down = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    args = [str(text_jsonl), "--db", str(db)] if verb == "audit" else ["--db", str(db)]
    env = {**os.environ, "PREFECT_API_URL": down}
    result = subprocess.run([sys.executable, "-m", "winnow.cli", verb, *args], env=env, capture_output=True, text=True, timeout=120)
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"the Prefect API at {down} is not reachable" in message and "unset PREFECT_API_URL" in message, message
    assert "Traceback" not in result.stderr
    assert Store(db).list_runs().empty
