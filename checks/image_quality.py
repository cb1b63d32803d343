"""Image quality: measure raw properties once per decoded image, then score them over the whole set.

Two phases, as in CleanVision:

1. :func:`measure_image` is pure and runs once per decoded image (during the single decode that
   also feeds the embedder and the near-duplicate hashes). It returns raw properties only.
2. :func:`check_image_quality` scores the table of properties for the whole dataset at once, so
   thresholds can change without decoding again.

Scoring (shared with ``checks.text_quality``)
---------------------------------------------
Every rule turns a measurement into a *severity* ``r >= 0``; ``r >= 1`` means the rule fired.

- A relative rule compares an item with its own dataset: ``r = z / z_threshold`` where ``z`` is the
  robust z-score ``(x - median) / max(1.4826 * MAD, floor)`` in the bad direction (0 in the good
  one). The floor keeps a very uniform dataset (say, every image 224×224) from turning a tiny
  difference into an infinite z. Relative rules need at least :data:`checks.scoring.MIN_ITEMS_RELATIVE` items.
- An absolute guard catches what is wrong in any dataset (a 1×1 image): ``r`` is how many times the
  measurement is past its limit, e.g. ``limit / value`` for "at most" limits.
- A yes/no rule (EXIF orientation) has ``r = 1`` when it fires.

A sub-issue's severity is the largest of its rules', and its sub-score is ``1 - 2 ** -r``: 0 for a
typical item, exactly 0.5 at the threshold, 0.75 at twice the threshold, approaching 1 beyond, so
sub-scores of different sub-issues share one 0..1 scale. An item's ``score`` is its strongest
sub-score; it is ``flagged`` when any sub-issue fired, i.e. exactly when ``score >= 0.5``.
"""

from __future__ import annotations

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageChops

from checks.scoring import SubIssue, at_least, at_most, either_limit, fmt, quality_findings, relative_rule, require_columns
from winnow.findings import empty_findings

MAX_SIDE = 256
"""Properties are measured on a copy at most this many pixels on its long side (speed)."""
GRAYSCALE_TOLERANCE = 3
"""An RGB image is grayscale when no pixel's channels differ by more than this (JPEG noise)."""
MIN_CONTRAST = 2.0
"""Brightness std (grey levels) below which an image is flat: blur and grayscale are not judged on
it (no edges to be sharp or blurry, no colour to miss); it is reported as low information."""

# Floors of the robust spread, per measurement scale (see "Scoring" above).
BRIGHTNESS_FLOOR = 10.0  # grey levels (0..255)
SHARPNESS_FLOOR = 0.1  # log10 of sharpness: z = 3.5 then means at least 2.2x less sharp
ENTROPY_FLOOR = 0.25  # bits
AREA_FLOOR = 0.5  # log2 of pixel area: z = 3.5 then means at least 3.4x the area, or 1/3.4
ASPECT_FLOOR = 0.25  # log2 of width / height: z = 3.5 then means at least 1.8x wider or taller

ORIENTATIONS = {
    2: "mirrored left-right",
    3: "rotated 180°",
    4: "mirrored top-bottom",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}
"""What a viewer does to an image with this EXIF orientation (tag 0x0112) before showing it."""

SCORED_COLUMNS = (
    "width", "height", "aspect_ratio", "brightness_p5", "brightness_p95", "brightness_std",
    "laplacian_var", "gradient_energy", "entropy", "is_grayscale", "exif_orientation",
)
"""The :func:`measure_image` properties that :func:`check_image_quality` scores."""

# --- phase 1: measure one image --------------------------------------------------------------


def measure_image(image: Image.Image) -> dict[str, float | int | str | bool]:
    """Raw properties of one decoded image; pure, cheap (a copy of at most 256 px is measured).

    ``width``, ``height``
        Original size in pixels.
    ``aspect_ratio``
        ``width / height``.
    ``brightness_p5``, ``brightness_p50``, ``brightness_p95``
        Percentiles of luminance (Pillow's ``L``: ITU-R 601 luma, 0..255). Too dark uses p95 (even
        the brightest part is dark, so a dark object on a black background is not "too dark");
        too light uses p5.
    ``brightness_std``
        Standard deviation of luminance: the image's contrast.
    ``laplacian_var``
        Variance of the 4-neighbour Laplacian of luminance: second-derivative (fine detail) energy.
    ``gradient_energy``
        Mean squared first difference of luminance (horizontal plus vertical): edge energy. Blur
        removes fine detail faster than edges, so ``laplacian_var / gradient_energy`` ("sharpness")
        drops when an image is blurred; unlike ``laplacian_var`` alone it does not drop when an
        image is merely darker or lower in contrast, and sensor noise raises it, never lowers it.
    ``entropy``
        Shannon entropy of the 256-bin luminance histogram in bits (0..8): low for flat images.
    ``is_grayscale``
        True for single-channel modes and for colour images whose channels are all (nearly) equal.
    ``mode``
        Pillow mode of the original (``RGB``, ``L``, ``RGBA``, ``P``, ``I;16``…).
    ``exif_orientation``
        EXIF orientation tag value, 1 (as stored) when absent or unreadable.
    ``phash``, ``dhash``
        imagehash perceptual and difference hashes (hex strings) of the working copy's luminance,
        reused by the near-duplicate detector so that the image is decoded once.
    """
    width, height = image.size
    small = _working_copy(image)
    is_grayscale = small.mode == "L" or _channels_equal(small)
    luma = small.convert("L") if small.mode == "RGB" else small
    levels = np.asarray(luma)
    gray = levels.astype(np.float32)
    histogram = np.bincount(levels.ravel(), minlength=256)
    p5, p50, p95 = _histogram_percentiles(histogram, (5, 50, 95))
    return {
        "width": int(width),
        "height": int(height),
        "aspect_ratio": width / height if height else 0.0,
        "brightness_p5": p5,
        "brightness_p50": p50,
        "brightness_p95": p95,
        "brightness_std": float(gray.std()),
        **_derivative_energies(gray),
        "entropy": _entropy_bits(histogram),
        "is_grayscale": is_grayscale,
        "mode": image.mode,
        "exif_orientation": _exif_orientation(image),
        "phash": str(imagehash.phash(luma)),
        "dhash": str(imagehash.dhash(luma)),
    }


def _working_copy(image: Image.Image) -> Image.Image:
    """An 8-bit ``L`` or ``RGB`` copy, at most :data:`MAX_SIDE` px on its long side."""
    width, height = image.size
    scale = MAX_SIDE / max(width, height, 1)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if image.mode in ("L", "RGB"):
        return image
    if image.mode.startswith("I;16"):  # 16-bit greyscale: keep the full range, do not clip at 255
        return Image.fromarray((np.asarray(image, dtype=np.float32) / 257.0).round().astype(np.uint8))
    if image.mode in ("1", "LA", "I", "F"):
        return image.convert("L")
    if image.mode == "PA":  # Pillow has no direct PA -> RGB conversion
        image = image.convert("RGBA")
    return image.convert("RGB")  # alpha is dropped: the colour under a transparent pixel is kept


def _channels_equal(rgb: Image.Image) -> bool:
    """Whether no pixel's R, G and B differ by more than :data:`GRAYSCALE_TOLERANCE`."""
    r, g, b = rgb.split()
    return all(ImageChops.difference(x, y).getextrema()[1] <= GRAYSCALE_TOLERANCE for x, y in ((r, g), (g, b), (r, b)))


def _histogram_percentiles(histogram: np.ndarray, percents: tuple[float, ...]) -> list[float]:
    """Percentiles (grey levels) read off a 256-bin histogram: cheaper than sorting the pixels."""
    cumulative = np.cumsum(histogram)
    if cumulative[-1] == 0:
        return [0.0 for _ in percents]
    return [float(np.searchsorted(cumulative, cumulative[-1] * p / 100.0)) for p in percents]


def _derivative_energies(gray: np.ndarray) -> dict[str, float]:
    """``laplacian_var`` and ``gradient_energy`` over the interior pixels (0 under 3 px a side)."""
    if min(gray.shape) < 3:
        return {"laplacian_var": 0.0, "gradient_energy": 0.0}
    centre = gray[1:-1, 1:-1]
    laplacian = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * centre
    dx, dy = gray[1:-1, 2:] - centre, gray[2:, 1:-1] - centre
    return {"laplacian_var": float(laplacian.var()), "gradient_energy": float(np.mean(dx * dx + dy * dy))}


def _entropy_bits(histogram: np.ndarray) -> float:
    """Shannon entropy of a histogram, in bits."""
    p = histogram[histogram > 0] / histogram.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def _exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag, 1 when there is none or it is not a valid value (1..8)."""
    try:
        value = int(image.getexif().get(0x0112, 1))
    except (TypeError, ValueError, SyntaxError, OSError):  # Pillow raises these on broken EXIF blocks
        return 1
    return value if 1 <= value <= 8 else 1


# --- phase 2: score the whole set ----------------------------------------------------------------


def check_image_quality(
    properties: pd.DataFrame,
    *,
    dark_z: float | None = 3.5,
    dark_brightness: float | None = 20.0,
    light_z: float | None = 3.5,
    light_brightness: float | None = 235.0,
    blur_z: float | None = 3.5,
    low_information_z: float | None = 3.5,
    min_entropy: float | None = 1.0,
    size_z: float | None = 3.5,
    min_side: int | None = 16,
    aspect_z: float | None = 3.5,
    max_aspect: float | None = 5.0,
    max_grayscale_fraction: float | None = 0.1,
    allowed_orientations: tuple[int, ...] | None = (1,),
) -> pd.DataFrame:
    """Score :func:`measure_image` properties (plus ``item_id``) over the whole set: one
    ``low_quality`` finding per item. Every threshold is keyword-only; None turns that rule off.

    Relative rules use a robust z-score against the dataset (``*_z``); absolute guards fire in any
    dataset. Sub-issues and their rules:

    - ``too_dark``: p95 brightness ``dark_z`` below the median, or at most ``dark_brightness``.
    - ``too_light``: p5 brightness ``light_z`` above the median, or at least ``light_brightness``.
    - ``blurry``: sharpness (``laplacian_var / gradient_energy``: fine detail per edge, so neither
      exposure nor contrast counts) ``blur_z`` below the median on a log scale; judged only on
      images with contrast.
    - ``low_information``: entropy ``low_information_z`` below the median, or under ``min_entropy``
      bits (1 bit: at most two equally common grey levels).
    - ``odd_size``: log area ``size_z`` from the median either way, or a side under ``min_side`` px.
    - ``odd_aspect_ratio``: log aspect ratio ``aspect_z`` from the median either way, or a long
      side at least ``max_aspect`` times the short one.
    - ``grayscale``: a grayscale image in a set where at most ``max_grayscale_fraction`` of images
      are grayscale (in a mostly grayscale set, grayscale is normal). Rarer scores higher.
    - ``exif_orientation``: an EXIF orientation outside ``allowed_orientations``: viewers rotate
      or mirror the image, loaders that ignore EXIF (most training code) do not.
    """
    if properties.empty:
        return empty_findings()
    require_columns(properties, SCORED_COLUMNS, "measure_image")
    p = properties.reset_index(drop=True)
    sub_issues = [
        _too_dark(p, dark_z, dark_brightness),
        _too_light(p, light_z, light_brightness),
        _blurry(p, blur_z),
        _low_information(p, low_information_z, min_entropy),
        _odd_size(p, size_z, min_side),
        _odd_aspect_ratio(p, aspect_z, max_aspect),
        _grayscale(p, max_grayscale_fraction),
        _exif_orientation_rule(p, allowed_orientations),
    ]
    return quality_findings(p["item_id"], sub_issues)


def _too_dark(p: pd.DataFrame, z: float | None, brightness: float | None) -> SubIssue:
    values = p["brightness_p95"].to_numpy(float)
    rel = relative_rule(values, z=z, floor=BRIGHTNESS_FLOOR, tail="low")
    limit = either_limit(rel.limit(-1), brightness, "below")
    return SubIssue(
        "too_dark",
        np.maximum(rel.severity, at_most(values, brightness)),
        lambda i: f"too dark (95th-percentile brightness {values[i]:.0f}, threshold {fmt(limit)}, dataset median {rel.median:.0f})",
        {"measure": "brightness_p95", "median": rel.median, "relative_limit": rel.limit(-1), "absolute_limit": brightness},
    )


def _too_light(p: pd.DataFrame, z: float | None, brightness: float | None) -> SubIssue:
    values = p["brightness_p5"].to_numpy(float)
    rel = relative_rule(values, z=z, floor=BRIGHTNESS_FLOOR, tail="high")
    # mirror onto darkness (255 - level) so the "at most" guard measures how far past the limit it is
    absolute = at_most(255.0 - values, None if brightness is None else 255.0 - brightness)
    limit = either_limit(rel.limit(1), brightness, "above")
    return SubIssue(
        "too_light",
        np.maximum(rel.severity, absolute),
        lambda i: f"too light (5th-percentile brightness {values[i]:.0f}, threshold {fmt(limit)}, dataset median {rel.median:.0f})",
        {"measure": "brightness_p5", "median": rel.median, "relative_limit": rel.limit(1), "absolute_limit": brightness},
    )


def _blurry(p: pd.DataFrame, z: float | None) -> SubIssue:
    judged = p["brightness_std"].to_numpy(float) >= MIN_CONTRAST
    sharpness = p["laplacian_var"].to_numpy(float) / np.maximum(p["gradient_energy"].to_numpy(float), 1e-6)
    rel = relative_rule(np.log10(sharpness[judged] + 1e-6), z=z, floor=SHARPNESS_FLOOR, tail="low")
    severity = np.zeros(len(p))
    severity[judged] = rel.severity
    limit = rel.limit(-1)
    limit_native = None if limit is None else 10**limit
    median = 10**rel.median
    return SubIssue(
        "blurry",
        severity,
        lambda i: (
            f"blurry (sharpness {sharpness[i]:.2f}, threshold {fmt(limit_native, '.2f')}, dataset median {median:.2f}; "
            "sharpness = Laplacian variance / gradient energy)"
        ),
        {"measure": "laplacian_var / gradient_energy", "median": median, "relative_limit": limit_native,
         "min_contrast": MIN_CONTRAST},
    )


def _low_information(p: pd.DataFrame, z: float | None, min_entropy: float | None) -> SubIssue:
    values = p["entropy"].to_numpy(float)
    rel = relative_rule(values, z=z, floor=ENTROPY_FLOOR, tail="low")
    limit = either_limit(rel.limit(-1), min_entropy, "below")
    return SubIssue(
        "low_information",
        np.maximum(rel.severity, at_most(values, min_entropy, offset=0.1)),
        lambda i: f"low information (entropy {values[i]:.2f} bits, threshold {fmt(limit, '.2f')}, dataset median {rel.median:.2f})",
        {"measure": "entropy", "median": rel.median, "relative_limit": rel.limit(-1), "absolute_limit": min_entropy},
    )


def _odd_size(p: pd.DataFrame, z: float | None, min_side: int | None) -> SubIssue:
    width, height = p["width"].to_numpy(float), p["height"].to_numpy(float)
    rel = relative_rule(np.log2(np.maximum(width * height, 1.0)), z=z, floor=AREA_FLOOR, tail="both")
    low, high = rel.limit(-1), rel.limit(1)
    band = "-" if low is None else f"{2**low:,.0f}–{2**high:,.0f} px²"
    return SubIssue(
        "odd_size",
        np.maximum(rel.severity, at_most(np.minimum(width, height), None if min_side is None else min_side - 1)),
        lambda i: (
            f"odd size ({width[i]:.0f}×{height[i]:.0f} px, area {width[i] * height[i]:,.0f} px²; "
            f"usual area {band}, dataset median {2**rel.median:,.0f} px², smallest side allowed {fmt(min_side)} px)"
        ),
        {"measure": "width * height", "median_area": 2**rel.median,
         "area_band": None if low is None else [2**low, 2**high], "min_side": min_side},
    )


def _odd_aspect_ratio(p: pd.DataFrame, z: float | None, max_aspect: float | None) -> SubIssue:
    ratio = p["aspect_ratio"].to_numpy(float)
    rel = relative_rule(np.log2(np.maximum(ratio, 1e-6)), z=z, floor=ASPECT_FLOOR, tail="both")
    elongation = np.maximum(ratio, 1.0 / np.maximum(ratio, 1e-6))
    low, high = rel.limit(-1), rel.limit(1)
    band = "-" if low is None else f"{2**low:.2f}–{2**high:.2f}"
    return SubIssue(
        "odd_aspect_ratio",
        np.maximum(rel.severity, at_least(elongation, max_aspect)),
        lambda i: (
            f"odd aspect ratio (width/height {ratio[i]:.2f}; usual {band}, dataset median {2**rel.median:.2f}, "
            f"long side at most {fmt(max_aspect, '.1f')}× the short)"
        ),
        {"measure": "width / height", "median": 2**rel.median,
         "band": None if low is None else [2**low, 2**high], "max_aspect": max_aspect},
    )


def _grayscale(p: pd.DataFrame, max_fraction: float | None) -> SubIssue:
    judged = p["brightness_std"].to_numpy(float) >= MIN_CONTRAST
    gray = p["is_grayscale"].to_numpy(bool) & judged
    fraction = float(gray.sum() / max(judged.sum(), 1))
    severity = np.zeros(len(p))
    if max_fraction is not None and fraction > 0:
        severity[gray] = max_fraction / fraction
    return SubIssue(
        "grayscale",
        severity,
        lambda i: f"grayscale in a colour set ({fraction:.1%} of images with contrast are grayscale, limit {max_fraction:.0%})",
        {"grayscale_fraction": fraction, "max_fraction": max_fraction},
    )


def _exif_orientation_rule(p: pd.DataFrame, allowed: tuple[int, ...] | None) -> SubIssue:
    orientation = p["exif_orientation"].to_numpy(int)
    fired = np.zeros(len(p), bool) if allowed is None else ~np.isin(orientation, allowed)
    return SubIssue(
        "exif_orientation",
        fired.astype(float),
        lambda i: (
            f"EXIF orientation {orientation[i]} (viewers show it {ORIENTATIONS.get(int(orientation[i]), 'transformed')}; "
            "loaders that ignore EXIF do not)"
        ),
        {"allowed": None if allowed is None else list(allowed)},
    )
