"""Pixel-level verification of candidate image pairs on small greyscale thumbnails.

A near-copy of an image is the same picture after an edit: re-encoded, resized, brightened, mirrored,
cropped by a few per cent, or with a caption drawn over it. An embedding or a perceptual hash
moves under some of these edits (a JPEG at quality 30, a 20 % crop), and two different but plain
items (two pairs of trousers) can sit closer in either than a copy does. Comparing the pixels once
the two thumbnails are aligned separates them: :func:`aligned_similarity` searches the alignment
— mirrored or not, one image shrunk to each size in ``[min_crop, 1]`` of the other's side and
placed at every offset inside it (the geometry of a crop), or shifted by a pixel or two — for the
best normalised cross-correlation, found for all offsets at once by FFT. A crop made at the image's own
resolution has a box whose side and corner fall between thumbnail pixels, so a crop's alignment is
then refined below the pixel (:func:`_refined_window`). The two aligned patches are then compared
twice with a *trimmed* correlation, which ignores the ``trim`` share of positions that disagree
most (so a caption or a logo drawn over part of the picture does not hide the copy): on the
intensities, and on the image gradients, which carry the texture and edges that tell two plain
look-alike items apart while a copy keeps them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as scipy_fft

MIN_CROP = 0.75
"""Smallest side of the shared region, as a share of the thumbnail side (a crop of up to 25 %)."""
MAX_SHIFT = 2
"""Largest translation tried, in thumbnail pixels (a shifted or re-padded copy), besides the crops."""
TRIM = 0.1
"""Share of the aligned pixels with the largest disagreement left out of the final correlation."""
CHUNK = 2048
"""Pairs aligned at a time (bounds the FFT buffers)."""
REFINE_SCALE_STEPS = (-1.0, -0.5, 0.5, 1.0)
"""Changes to a crop box's side tried by the sub-pixel refinement, in thumbnail pixels."""
REFINE_SHIFT_STEPS = (-0.5, -0.25, 0.25, 0.5)
"""Moves of a crop box's corner tried by the sub-pixel refinement, in thumbnail pixels, each axis."""
REFINE_ROUNDS = 1
"""Passes of the refinement over (side, row, column)."""
_EPS = 1e-6


@lru_cache(maxsize=64)
def resize_matrix(side: int, size: int) -> np.ndarray:
    """``(size, side)`` matrix that resizes a signal of ``side`` samples to ``size`` samples by
    area-weighted linear interpolation (antialiased when shrinking), so ``R @ image @ R.T``
    resizes an image."""
    scale = side / size
    centres = (np.arange(size) + 0.5) * scale - 0.5
    support = max(1.0, scale)
    offsets = np.arange(side)[None, :] - centres[:, None]
    weights = np.clip(1.0 - np.abs(offsets) / support, 0.0, None)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _standardise(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    x = x - x.mean(axis=axes, keepdims=True)
    return x / (np.sqrt((x * x).sum(axis=axes, keepdims=True)) + _EPS)


def _integral(images: np.ndarray) -> np.ndarray:
    """Integral images with a leading row and column of zeros: ``(p, side + 1, side + 1)``, in
    float64 (a variance from float32 sums of squares would cancel catastrophically)."""
    out = np.zeros((images.shape[0], images.shape[1] + 1, images.shape[2] + 1), np.float64)
    out[:, 1:, 1:] = images
    for column in range(2, out.shape[2]):  # running sums one row or column at a time: a thumbnail is small,
        out[:, :, column] += out[:, :, column - 1]  # and numpy's cumsum along a middle axis is several times slower
    for row in range(2, out.shape[1]):
        out[:, row] += out[:, row - 1]
    return out


def _box(integral: np.ndarray, size: int) -> np.ndarray:
    """Sum of every ``size`` × ``size`` window from an integral image."""
    c = integral
    return c[:, size:, size:] - c[:, :-size, size:] - c[:, size:, :-size] + c[:, :-size, :-size]


def _template(small: np.ndarray, size: int, shift: bool) -> np.ndarray:
    """What is slid over the other image: ``small`` shrunk to ``size`` (a crop's geometry), or its
    centre ``size`` × ``size`` at full scale (a shift's)."""
    side = small.shape[-1]
    if shift:
        margin = (side - size) // 2
        return small[:, margin : margin + size, margin : margin + size]
    r = resize_matrix(side, size)
    return r @ small @ r.T


def _best_placement(big_fft: np.ndarray, integrals: tuple[np.ndarray, np.ndarray], template_fft: np.ndarray, side: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The best NCC per pair of a standardised ``size`` × ``size`` template (given by the FFT of
    its zero-padded image) slid over every window of the other image, and that window's offset."""
    corr = scipy_fft.irfft2(big_fft * np.conj(template_fft), s=(side, side))[:, : side - size + 1, : side - size + 1]
    sums, squares = _box(integrals[0], size), _box(integrals[1], size)
    spread = np.sqrt(np.clip(squares - sums * sums / (size * size), 0.0, None)) + 1e-3
    ncc = (corr / spread).reshape(len(corr), -1)
    where = ncc.argmax(axis=1)
    return ncc[np.arange(len(corr)), where], where


def _padded_fft(template: np.ndarray, side: int) -> np.ndarray:
    padded = np.zeros((len(template), side, side), np.float32)
    padded[:, : template.shape[1], : template.shape[2]] = _standardise(template, (1, 2))
    return scipy_fft.rfft2(padded)


def _trimmed_correlation(x: np.ndarray, y: np.ndarray, trim: float) -> np.ndarray:
    """Correlation of each row pair after leaving out the ``trim`` share of positions where the
    standardised rows differ most."""
    zx, zy = _standardise(x, (1,)), _standardise(y, (1,))
    residual = np.abs(zx - zy)
    keep = residual <= np.quantile(residual, 1.0 - trim, axis=1, keepdims=True)
    def masked(v: np.ndarray) -> np.ndarray:
        mean = (v * keep).sum(axis=1, keepdims=True) / keep.sum(axis=1, keepdims=True)
        v = (v - mean) * keep
        return v / (np.linalg.norm(v, axis=1, keepdims=True) + _EPS)
    return (masked(x) * masked(y)).sum(axis=1)


def pixel_vectors(thumbnails: np.ndarray) -> np.ndarray:
    """Each thumbnail's pixels as a vector, centred and scaled to unit length (zero for a flat one),
    so that inner products are correlations and the shared kNN backend and probes can use them."""
    pixels = np.asarray(thumbnails, dtype=np.float32).reshape(len(thumbnails), -1)
    pixels = pixels - pixels.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(pixels, axis=1, keepdims=True)
    return pixels / np.where(norms > 0, norms, 1.0)


def aligned_similarity(thumbnails: np.ndarray, a: np.ndarray, b: np.ndarray, *, min_crop: float = MIN_CROP, trim: float = TRIM) -> np.ndarray:
    """``(pairs, 2)`` similarities in [-1, 1] of each pair ``(thumbnails[a[i]], thumbnails[b[i]])``
    at its best alignment: of the intensities (column 0) and of the gradients (column 1).

    ``thumbnails`` is ``(n, side, side)`` greyscale. The alignments tried: either image (or its
    mirror image) shrunk to every size from ``side`` down to ``min_crop × side`` and placed at every
    offset inside the other (a crop), or shifted by up to :data:`MAX_SHIFT` pixels either way (the
    centre of one slid over the other); the best by normalised cross-correlation (a crop's refined
    below the pixel, see :func:`_refined_window`) is then scored by
    the correlations of the two aligned patches with the ``trim`` share of most different positions
    left out.
    """
    thumbnails = np.asarray(thumbnails, dtype=np.float32)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    out = np.empty((len(a), 2), np.float32)
    side = thumbnails.shape[-1] if thumbnails.ndim == 3 else 0
    hypotheses = [(size, False) for size in range(side, max(3, int(np.ceil(side * min_crop))) - 1, -1)]
    hypotheses += [(side - 2 * margin, True) for margin in range(1, MAX_SHIFT + 1) if side - 2 * margin >= 3]
    for start in range(0, len(a), CHUNK):
        first, second = thumbnails[a[start : start + CHUNK]], thumbnails[b[start : start + CHUNK]]
        out[start : start + CHUNK] = _align_chunk(first, second, hypotheses, trim)
    return out


def _sampling(start: np.ndarray, size: int, spacing: np.ndarray, side: int) -> np.ndarray:
    """``(pairs, size, side)`` bilinear sampling matrices: row ``i`` of pair ``p`` reads the signal
    at ``start[p] + (i + 0.5) * spacing[p] - 0.5`` (clamped to the image)."""
    coords = np.clip(start[:, None] + (np.arange(size)[None, :] + 0.5) * spacing[:, None] - 0.5, 0.0, side - 1.0)
    return np.clip(1.0 - np.abs(np.arange(side)[None, None, :] - coords[:, :, None]), 0.0, None).astype(np.float32)


def _alignment_score(window: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Correlation of the intensities plus that of the gradients, per pair."""
    def correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (_standardise(x, (1,)) * _standardise(y, (1,))).sum(axis=1)
    return correlation(window.reshape(len(window), -1), template.reshape(len(template), -1)) + correlation(_gradients(window), _gradients(template))


def _refined_window(big: np.ndarray, template: np.ndarray, top: np.ndarray, left: np.ndarray) -> np.ndarray:
    """The patch of ``big`` that best matches ``template`` (``size`` × ``size``, a crop's geometry)
    once the integer window at ``(top, left)`` may grow or shrink by up to a pixel and move by up to
    half a pixel: the box is resampled bilinearly, and its side, row and column are improved one at a
    time (:data:`REFINE_ROUNDS` passes) for the best sum of intensity and gradient correlations."""
    side, size = big.shape[-1], template.shape[-1]
    box = {"side": np.zeros(len(big)), "row": np.zeros(len(big)), "column": np.zeros(len(big))}

    def patch(box: dict[str, np.ndarray]) -> np.ndarray:
        spacing = (size + box["side"]) / size
        rows = _sampling(top + box["row"], size, spacing, side)
        columns = _sampling(left + box["column"], size, spacing, side)
        return rows @ big @ np.transpose(columns, (0, 2, 1))

    best_patch = patch(box)
    best = _alignment_score(best_patch, template)
    for _ in range(REFINE_ROUNDS):
        for name, steps in (("side", REFINE_SCALE_STEPS), ("row", REFINE_SHIFT_STEPS), ("column", REFINE_SHIFT_STEPS)):
            base = box[name]
            for step in steps:
                trial = patch({**box, name: base + step})
                score = _alignment_score(trial, template)
                better = score > best
                best = np.where(better, score, best)
                best_patch[better] = trial[better]
                box[name] = np.where(better, base + step, box[name])
    return best_patch


def _gradients(patches: np.ndarray) -> np.ndarray:
    """Horizontal and vertical first differences of each patch, flattened side by side."""
    dy = np.diff(patches, axis=1)[:, :, :-1]
    dx = np.diff(patches, axis=2)[:, :-1, :]
    return np.concatenate([dy.reshape(len(patches), -1), dx.reshape(len(patches), -1)], axis=1)


def _align_chunk(first: np.ndarray, second: np.ndarray, hypotheses: list[tuple[int, bool]], trim: float) -> np.ndarray:
    """Best alignment of each pair over four views — ``second`` placed in ``first``, ``first`` in
    ``second``, and the same with ``second`` mirrored — and every ``(size, shift)`` hypothesis,
    then the trimmed correlations of the aligned patches. FFTs are shared between views."""
    p, side = len(first), first.shape[-1]
    mirrored = np.ascontiguousarray(second[:, :, ::-1])
    images = {"first": first, "second": second, "mirrored": mirrored}
    views = [("first", "second"), ("second", "first"), ("first", "mirrored"), ("mirrored", "first")]
    spectra = {name: scipy_fft.rfft2(image) for name, image in images.items() if name in {big for big, _ in views}}
    integrals = {name: (_integral(image), _integral(image * image)) for name, image in images.items()}
    best = np.full(p, -np.inf)
    choice = np.zeros((p, 3), np.int64)  # view, hypothesis, offset
    for h, (size, shift) in enumerate(hypotheses):
        templates = {name: _padded_fft(_template(image, size, shift), side) for name, image in images.items()}
        for v, (big, small) in enumerate(views):
            score, where = _best_placement(spectra[big], integrals[big], templates[small], side, size)
            better = score > best
            best = np.where(better, score, best)
            choice[better] = np.stack([np.full(better.sum(), v), np.full(better.sum(), h), where[better]], axis=1)
    result = np.empty((p, 2), np.float32)
    for v, h in {(int(v), int(h)) for v, h in choice[:, :2]}:
        rows = np.flatnonzero((choice[:, 0] == v) & (choice[:, 1] == h))
        size, shift = hypotheses[h]
        big, small = images[views[v][0]][rows], images[views[v][1]][rows]
        span = side - size + 1
        top, left = choice[rows, 2] // span, choice[rows, 2] % span
        template = _template(small, size, shift)
        if shift or size == side:
            ys = top[:, None] + np.arange(size)[None, :]
            xs = left[:, None] + np.arange(size)[None, :]
            window = big[np.arange(len(rows))[:, None, None], ys[:, :, None], xs[:, None, :]]
        else:
            window = _refined_window(big, template, top.astype(np.float64), left.astype(np.float64))
        result[rows, 0] = _trimmed_correlation(window.reshape(len(rows), -1), template.reshape(len(rows), -1), trim)
        result[rows, 1] = _trimmed_correlation(_gradients(window), _gradients(template), trim)
    return result
