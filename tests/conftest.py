"""Shared fixtures: Prefect settings, one Prefect test harness per session, and small real datasets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PREFECT_HOME = ROOT / ".prefect" / "tests"
PREFECT_HOME.mkdir(parents=True, exist_ok=True)
os.environ["PREFECT_HOME"] = str(PREFECT_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

FASHION = ROOT / "winnow" / "demo_data" / "fashion_mnist_600.npz"


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def fashion_images(n_per_class: int, classes: tuple[int, ...] = (0, 1, 7)) -> list[tuple[np.ndarray, str]]:
    """Real Fashion-MNIST images from the bundled demo subset: ``(pixels, class name)``."""
    data = np.load(FASHION)
    names = [str(c) for c in data["class_names"]]
    out = []
    for c in classes:
        rows = np.flatnonzero(data["labels"] == c)[:n_per_class]
        out.extend((data["images"][r], names[c]) for r in rows)
    return out


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """``root/<label>/<file>`` with 24 real images, one exact copy, one JPEG re-encode, a file
    that is not an image, an empty file and a non-image file that ingest must ignore."""
    root = tmp_path_factory.mktemp("images")
    for i, (pixels, label) in enumerate(fashion_images(8)):
        (root / label).mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / label / f"img_{i:02d}.png")
    first = sorted((root / "trouser").glob("*.png"))[0]
    shutil.copyfile(first, root / "trouser" / "zz_copy.png")
    Image.open(first).save(root / "trouser" / "zz_reencoded.jpg", quality=90)
    (root / "sneaker" / "broken.png").write_text("this is not a png")
    (root / "sneaker" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image, not an item")
    return root


TEXTS = [
    ("a", "The film is a gorgeous, moving portrait of a family in crisis.", "pos"),
    ("b", "A tedious, overlong mess with nothing to say.", "neg"),
    ("c", "the film is a GORGEOUS, moving   portrait of a family in crisis.", "pos"),
    ("d", "The film is a gorgeous and moving portrait of a family in crisis!", "pos"),
    ("e", "Sharp writing and a terrific lead performance carry the story.", "pos"),
    ("f", "The plot collapses in the third act and never recovers.", "neg"),
    ("g", "Flat characters, clumsy dialogue, and a score that never stops.", "neg"),
    ("h", "An intelligent thriller that keeps you guessing until the end.", "pos"),
    ("i", "", "neg"),
    ("j", "Preheat the oven to 200 degrees and grease a baking tray.", "neg"),
    ("k", "Funny, warm and surprisingly wise about growing up.", "pos"),
    ("l", "It looks expensive but feels empty and cynical.", "neg"),
]


@pytest.fixture(scope="session")
def text_jsonl(tmp_path_factory) -> Path:
    """Twelve short reviews: an exact copy (case/spacing), a near copy, an empty text, a recipe."""
    path = tmp_path_factory.mktemp("texts") / "reviews.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "text": t, "label": l}) for i, t, l in TEXTS) + "\n")
    return path


@pytest.fixture(scope="session")
def wine_csv(tmp_path_factory) -> Path:
    """60 rows of scikit-learn's wine data plus a duplicate row and a row with a bad number."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.iloc[::3].reset_index(drop=True).rename(columns={"target": "cultivar"})
    frame.insert(0, "id", [f"w{i}" for i in range(len(frame))])
    extra = [frame.iloc[4].to_dict() | {"id": "dup"}, frame.iloc[5].to_dict() | {"id": "bad", "alcohol": "oops"}]
    frame = pd.concat([frame.astype(object), pd.DataFrame(extra)], ignore_index=True)
    path = tmp_path_factory.mktemp("table") / "wine.csv"
    frame.to_csv(path, index=False)
    return path
