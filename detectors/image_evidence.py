"""Evidence read from the images' pixels, beside their embeddings: the wrong orientation or polarity.

A garment stored upside down, a scan rotated by 90° or a photographic negative is still "a shirt" to
an ImageNet embedding, but it is unlike every other image of the dataset *as stored*, and like them
once turned the right way. :func:`orientation_gain` measures exactly that on the tiny greyscale
thumbnails measured with every image (``winnow.embed.thumbnails``): each image's mean pixel
distance to its ``k`` nearest other images, as stored and after each of :data:`TRANSFORMS`; the
evidence is how many times closer the best transformed version gets (log ratio). An image of a
symmetric object gains nothing from a turn; a misoriented one gains a lot. A left-right mirror is
not among the transforms: mirrored images are ordinary in most datasets.

The thumbnails are compared in their leading :data:`PROJECTED_DIM` principal components plus the
norm of what those leave out, against at most :data:`REFERENCE_SAMPLE` images (a fixed random
sample beyond that), so a million images cost a few matrix products per transform.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np
from sklearn.decomposition import PCA

TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rotated by 90°": lambda t: np.rot90(t, 1, axes=(1, 2)),
    "rotated by 180°": lambda t: np.rot90(t, 2, axes=(1, 2)),
    "rotated by 270°": lambda t: np.rot90(t, 3, axes=(1, 2)),
    "flipped upside down": lambda t: t[:, ::-1, :],
    "inverted (a negative)": lambda t: 1.0 - t,
}
PROJECTED_DIM = 64
REFERENCE_SAMPLE = 5_000
ROW_CHUNK = 16_384


def orientation_gain(thumbnails: np.ndarray, k: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, transform)`` per image: ``log(d_stored / d_best)``, where ``d`` is the mean distance
    to the ``k`` nearest other images (of the reference) and ``d_best`` the smallest over
    :data:`TRANSFORMS`, and the index of that transform in :data:`TRANSFORMS`."""
    images = np.asarray(thumbnails, dtype=np.float32) / 255.0
    n = len(images)
    rng = np.random.default_rng(seed)
    reference = np.sort(rng.choice(n, size=REFERENCE_SAMPLE, replace=False)) if n > REFERENCE_SAMPLE else np.arange(n)
    k = max(1, min(k, len(reference) - 1))
    flat = images.reshape(n, -1)
    pca = PCA(min(PROJECTED_DIM, len(reference) - 1, flat.shape[1]), random_state=seed).fit(flat[reference])
    base, base_residual = _project(pca, flat[reference])
    stored = _mean_knn_distance(pca, flat, base, base_residual, reference, k)
    moved = np.stack([_mean_knn_distance(pca, t(images).reshape(n, -1), base, base_residual, reference, k) for t in TRANSFORMS.values()])
    best = moved.argmin(axis=0)
    return np.log(np.maximum(stored, 1e-6) / np.maximum(moved.min(axis=0), 1e-6)), best


def _project(pca: PCA, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal components (float32) and the squared norm of what they leave out."""
    components = pca.transform(rows)
    residual = ((rows - pca.inverse_transform(components)) ** 2).sum(axis=1)
    return np.ascontiguousarray(components, dtype=np.float32), residual


def _mean_knn_distance(pca: PCA, rows: np.ndarray, base: np.ndarray, base_residual: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each row to its ``k`` nearest reference images, the row's own
    image (same position) excluded; residuals add as orthogonal parts."""
    out = np.empty(len(rows))
    position = np.full(len(rows), -1)
    position[reference] = np.arange(len(reference))
    for start in range(0, len(rows), ROW_CHUNK):
        query, residual = _project(pca, rows[start : start + ROW_CHUNK])
        squared, found = faiss.knn(query, base, k + 1)
        own = found == position[start : start + ROW_CHUNK, None]
        # drop the image itself where it was found, else the farthest of the k + 1
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.ones_like(own)
        keep[np.arange(len(own)), drop] = False
        squared = squared[keep].reshape(len(own), k) + residual[:, None] + base_residual[found[keep].reshape(len(own), k)]
        out[start : start + ROW_CHUNK] = np.sqrt(np.maximum(squared, 0.0)).mean(axis=1)
    return out
