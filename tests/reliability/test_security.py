"""Security: the dashboard shows nobody more than the dataset it was pointed at.

- it listens on 127.0.0.1 unless ``--host`` says otherwise, and then it warns;
- thumbnails come only from files inside the run's source root, whatever an item id, a stored uri,
  a symbolic link or a query parameter says;
- hostile strings (SQL, quotes, NUL, path fragments) as labels, ids, filters, notes and reviewer
  names are data, never SQL: every store call keeps them verbatim and leaves the tables intact;
- user files are never unpickled or YAML-constructed: a suite with Python tags is refused without
  running anything, and no module calls an unsafe loader (checked on the source, so a new one fails).
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.live_dashboard import free_port, wait_for_http
from winnow.errors import ConfigError, WinnowError
from winnow.findings import FINDINGS_COLUMNS, empty_pairs
from winnow.store import Store

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
PACKAGES = ("winnow", "flows", "detectors", "checks", "dashboard")
HOSTILE = [
    "'; DROP TABLE findings; --",
    'x" OR "1"="1',
    "%' OR '%'='",
    "Robert'); DROP TABLE items;--",
    "../../etc/passwd",
    "nul\x00byte",
    "line\nbreak",
    "$label",
]


def outward_address() -> str | None:
    """This machine's address on its main network interface, or None when it has none but loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # UDP: picks a route, sends nothing
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_dashboard_listens_on_loopback_unless_told_otherwise_and_then_warns(tmp_path):
    db = tmp_path / "d.duckdb"
    Store(db).initialize()
    ports = free_port(), free_port()
    default, exposed = (
        subprocess.Popen([sys.executable, "-m", "winnow.cli", "dashboard", "--db", str(db), "--port", str(port), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        for port, extra in zip(ports, ([], ["--host", "0.0.0.0"]))
    )
    try:
        for port in ports:
            assert wait_for_http(f"http://127.0.0.1:{port}/_stcore/health") == 200
        address = outward_address()
        if address is not None:
            assert not reachable(address, ports[0]), "the default dashboard answers on a public interface"
            assert reachable(address, ports[1]), "--host 0.0.0.0 did not open the dashboard to the network"
    finally:
        for process in (default, exposed):
            process.terminate()
        outputs = [p.communicate(timeout=30) for p in (default, exposed)]
    assert "warning" not in outputs[0][1]
    warning = " ".join(outputs[1][1].split())
    assert "warning: the dashboard listens on 0.0.0.0" in warning and "there is no login" in warning, warning


@pytest.fixture
def run_with_outside_files(tmp_path) -> tuple[Store, str, Path]:
    """A run of a folder ``src`` whose stored items point inside it, outside it (a relative
    ``..`` path, an absolute path, a symbolic link leading out) and at names full of SQL."""
    src, outside = tmp_path / "src", tmp_path / "private"
    src.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8), "red").save(src / "inside.png")
    Image.new("RGB", (8, 8), "blue").save(outside / "secret.png")
    (src / "link.png").symlink_to(outside / "secret.png")
    uris = {
        "inside.png": src / "inside.png",
        "dotdot.png": src / ".." / "private" / "secret.png",
        "absolute.png": outside / "secret.png",
        "link.png": src / "link.png",
        HOSTILE[0]: src / ".." / "private" / "secret.png",
    }
    store = Store(tmp_path / "s.duckdb")
    run_id = store.create_run(dataset="d", source=str(src), modality="image", config={})
    store.save_items(run_id, pd.DataFrame({
        "item_id": list(uris), "ordinal": range(len(uris)), "modality": "image", "uri": [str(u) for u in uris.values()],
        "text": None, "label": "x", "content_hash": [f"h{i}" for i in range(len(uris))], "metadata": None, "error": None,
    }))
    return store, run_id, src


def test_thumbnails_come_only_from_inside_the_source_root(run_with_outside_files):
    from dashboard.ui import open_image

    store, run_id, src = run_with_outside_files
    run = store.get_run(run_id)
    items = store.load_items(run_id).set_index("item_id")
    shown = {item_id: open_image(row.uri, run) is not None for item_id, row in items.iterrows()}
    assert shown == {"inside.png": True, "dotdot.png": False, "absolute.png": False, "link.png": False, HOSTILE[0]: False}
    assert open_image(str(src / "missing.png"), run) is None and open_image(None, run) is None


@pytest.mark.parametrize("item", ["inside.png", "dotdot.png", "link.png", HOSTILE[0], "../private/secret.png", "/etc/passwd"])
def test_item_page_opened_by_query_parameter_shows_no_outside_file(run_with_outside_files, monkeypatch, item):
    store, run_id, _ = run_with_outside_files
    monkeypatch.setenv("WINNOW_DB", str(store.path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    at.query_params["item"] = item
    at.switch_page("views/item.py").run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == (1 if item == "inside.png" else 0)
    assert store.list_runs()["run_id"].tolist() == [run_id]  # nothing dropped


def test_hostile_strings_are_data_in_every_store_call(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    run_id = store.create_run(dataset=HOSTILE[0], source=HOSTILE[4], modality="text", config={"name": HOSTILE[1]})
    items = pd.DataFrame({
        "item_id": HOSTILE, "ordinal": range(len(HOSTILE)), "modality": "text", "uri": None, "text": HOSTILE,
        "label": HOSTILE, "content_hash": [f"h{i}" for i in range(len(HOSTILE))], "metadata": None, "error": None,
    })
    store.save_items(run_id, items)
    findings = pd.DataFrame({**{c: None for c in FINDINGS_COLUMNS}, "item_id": HOSTILE, "issue_type": "outlier",
                             "score": 0.5, "flagged": True, "reason": HOSTILE, "detail": "{}"})
    store.save_results(run_id, findings, empty_pairs())

    for value in HOSTILE:
        page, total = store.findings_page(run_id, "outlier", label=value)
        assert total == 1 and page["item_id"].tolist() == [value] and page["text"].tolist() == [value]
        assert store.findings_page(run_id, value)[1] == 0  # a hostile issue type matches nothing
        assert store.get_items(run_id, [value])["item_id"].tolist() == [value]
        assert store.item_history(HOSTILE[0], value)["items"]["label"].tolist() == [value]
        with pytest.raises(WinnowError):
            store.get_run(value)
    assert store.record_decisions(run_id, HOSTILE, "outlier", "relabel", new_label=HOSTILE[1], note=HOSTILE[2], reviewer=HOSTILE[3]) == len(HOSTILE)
    with pytest.raises(ConfigError):
        store.record_decisions(run_id, HOSTILE[:1], "outlier", HOSTILE[0])
    with pytest.raises(WinnowError, match="nothing was recorded"):
        store.record_decisions(run_id, ["not there' OR '1'='1"], "outlier", "confirmed")

    decisions = store.decisions_for(run_id)
    assert sorted(decisions["item_id"]) == sorted(HOSTILE)
    assert set(decisions["new_label"]) == {HOSTILE[1]} and set(decisions["note"]) == {HOSTILE[2]} and set(decisions["reviewer"]) == {HOSTILE[3]}
    assert len(store.load_items(run_id)) == len(HOSTILE) and len(store.findings(run_id)) == len(HOSTILE)
    assert store.list_runs()["dataset"].tolist() == [HOSTILE[0]]


def test_a_yaml_suite_with_python_tags_is_refused_without_running_it(tmp_path):
    from checks.tabular import load_suite

    marker = tmp_path / "ran"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"expectations: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError):
        load_suite(suite)
    time.sleep(0.1)
    assert not marker.exists()


def _unsafe_calls(path: Path) -> list[str]:
    """Calls in one source file that would run code hidden in a user's file: yaml.load/unsafe_load,
    pickle/dill/joblib loads, torch.load without weights_only=True, numpy loads with allow_pickle=True,
    eval and exec."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = f"{func.value.id}.{func.attr}" if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else getattr(func, "id", "")
        true_flags = {k.arg for k in node.keywords if isinstance(k.value, ast.Constant) and k.value.value is True}
        unsafe = (
            name in {"yaml.load", "yaml.unsafe_load", "yaml.full_load", "pickle.load", "pickle.loads", "dill.load", "joblib.load", "eval", "exec"}
            or (name == "torch.load" and "weights_only" not in true_flags)
            or (name in {"np.load", "numpy.load"} and "allow_pickle" in true_flags)
        )
        if unsafe:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_no_module_deserialises_user_files_unsafely():
    sources = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(sources) > 40
    found = [call for path in sources for call in _unsafe_calls(path)]
    assert not found, "unsafe loaders: " + "; ".join(found)


def test_the_unsafe_call_finder_finds_them(tmp_path):
    bad = ROOT / "tests" / "reliability" / "_unsafe_example.py"
    bad.write_text("import yaml, torch, numpy as np\nyaml.load(s)\ntorch.load(p)\ntorch.load(p, weights_only=True)\nnp.load(p, allow_pickle=True)\n")
    try:
        found = _unsafe_calls(bad)
    finally:
        bad.unlink()
    assert [f.split(": ")[1] for f in found] == ["yaml.load", "torch.load", "np.load"]


def test_only_the_store_speaks_sql():
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / "winnow" / "store"):
                continue
            tree = ast.parse(path.read_text())
            imports = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
            modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            if "duckdb" in imports | modules:
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"only winnow/store may import duckdb: {offenders}"
