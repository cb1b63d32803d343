"""Image quality check: properties of hand-built images, and planted issues in a real colour set.

The set: 30 Fashion-MNIST images painted with a random background and foreground colour (a colour
set of real shapes), upscaled to 56 px with crisp pixel edges and mild sensor-like noise, written as
PNG files; plus one file per planted issue, every one read back from disk as ingest would.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from checks.image_quality import check_image_quality, measure_image
from tests.checks.contract import assert_low_quality_contract
from tests.conftest import fashion_images

SIDE = 56


def _colour_image(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A Fashion-MNIST item painted in a random light colour on a random darker background."""
    alpha = (pixels.astype(np.float32) / 255)[..., None]
    painted = rng.uniform(40, 120, 3) * (1 - alpha) + rng.uniform(150, 255, 3) * alpha
    image = Image.fromarray(painted.astype(np.uint8)).resize((SIDE, SIDE), Image.Resampling.NEAREST)
    noisy = np.asarray(image, np.float32) + rng.normal(0, 2, (SIDE, SIDE, 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    return Image.fromarray((np.asarray(image, np.float32) * factor).astype(np.uint8))


def _planted(base: Image.Image) -> dict[str, Image.Image]:
    return {
        "black": Image.new("RGB", (SIDE, SIDE)),
        "white": Image.new("RGB", (SIDE, SIDE), (255, 255, 255)),
        "blurred": base.filter(ImageFilter.GaussianBlur(3)),
        "tiny": base.resize((1, 1)),
        "strip": base.resize((400, 20)),
        "grayscale": base.convert("L").convert("RGB"),
        "slightly_dark": _scaled(base, 0.6),
    }


@pytest.fixture(scope="module")
def properties(tmp_path_factory) -> pd.DataFrame:
    """Measured properties of the normal set and the planted files, read back from disk."""
    root = tmp_path_factory.mktemp("quality_images")
    rng = np.random.default_rng(7)
    images = {f"normal_{i:02d}": _colour_image(p, rng) for i, (p, _) in enumerate(fashion_images(10))}
    images |= _planted(images["normal_03"])
    paths = {}
    for name, image in images.items():
        paths[name] = root / f"{name}.png"
        image.save(paths[name])
    exif = Image.Exif()
    exif[0x0112] = 6
    paths["rotated"] = root / "rotated.jpg"
    images["normal_05"].save(paths["rotated"], quality=95, exif=exif)
    rows = []
    for name, path in paths.items():
        with Image.open(path) as image:
            rows.append({"item_id": name, **measure_image(image)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def findings(properties) -> pd.DataFrame:
    return check_image_quality(properties).set_index("item_id")


def _sub_scores(findings: pd.DataFrame, item: str) -> dict[str, float]:
    return json.loads(findings.loc[item, "detail"])["sub_scores"]


# --- measure_image ------------------------------------------------------------------------


def _half_black_half_white() -> Image.Image:
    pixels = np.zeros((40, 40), np.uint8)
    pixels[:, 20:] = 255
    return Image.fromarray(pixels)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("RGB", (30, 20)), {"width": 30, "height": 20, "brightness_p95": 0, "entropy": 0.0, "laplacian_var": 0.0}),
        (Image.new("L", (8, 8), 255), {"brightness_p5": 255, "entropy": 0.0, "is_grayscale": True, "mode": "L"}),
        (_half_black_half_white(), {"brightness_p5": 0, "brightness_p95": 255, "entropy": 1.0, "brightness_std": 127.5}),
        (Image.new("RGB", (10, 10), (200, 30, 30)), {"is_grayscale": False, "brightness_p50": 81}),
        (Image.new("RGB", (10, 10), (90, 90, 92)), {"is_grayscale": True}),
        (Image.new("RGB", (1000, 500), (10, 20, 30)), {"width": 1000, "height": 500, "aspect_ratio": 2.0}),
        (Image.new("RGBA", (16, 16), (0, 0, 255, 0)), {"mode": "RGBA", "is_grayscale": False, "exif_orientation": 1}),
    ],
    ids=["black-rgb", "white-L", "two-levels", "red", "near-gray-rgb", "large-keeps-original-size", "transparent-rgba"],
)
def test_measure_image_properties(image, expected):
    measured = measure_image(image)
    assert {k: measured[k] for k in expected} == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "PA"])
def test_measure_image_handles_every_common_mode(mode):
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    image = Image.fromarray(np.dstack([gradient, gradient[::-1], np.full_like(gradient, 128)]))
    image = image.convert("RGBA").convert("PA") if mode == "PA" else image.convert(mode)
    measured = measure_image(image)
    assert measured["mode"] == mode and (measured["width"], measured["height"]) == (64, 48)
    assert 0 <= measured["brightness_p5"] <= measured["brightness_p50"] <= measured["brightness_p95"] <= 255
    assert len(measured["phash"]) == len(measured["dhash"]) == 16


def test_blur_lowers_sharpness_but_darkening_does_not():
    image = _colour_image(fashion_images(1)[0][0], np.random.default_rng(0))
    sharp, blurred, dark = (measure_image(im) for im in (image, image.filter(ImageFilter.GaussianBlur(3)), _scaled(image, 0.5)))

    def sharpness(m: dict) -> float:
        return m["laplacian_var"] / m["gradient_energy"]

    assert blurred["laplacian_var"] < sharp["laplacian_var"] / 10
    assert sharpness(blurred) < sharpness(sharp) / 3 < sharpness(dark)


# --- check_image_quality --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "sub_issue", "phrase"),
    [
        ("black", "too_dark", "too dark (95th-percentile brightness 0"),
        ("white", "too_light", "too light (5th-percentile brightness 255"),
        ("blurred", "blurry", "blurry (sharpness"),
        ("tiny", "odd_size", "odd size (1×1 px"),
        ("strip", "odd_aspect_ratio", "odd aspect ratio (width/height 20.00"),
        ("grayscale", "grayscale", "grayscale in a colour set"),
        ("rotated", "exif_orientation", "EXIF orientation 6 (viewers show it rotated 90° clockwise"),
        ("black", "low_information", "low information (entropy 0.00 bits"),
    ],
    ids=["black", "white", "blurred", "1x1", "400x20-strip", "grayscale", "exif-6", "flat-is-low-information"],
)
def test_planted_issue_is_flagged_and_named(findings, item, sub_issue, phrase):
    row = findings.loc[item]
    assert row["flagged"] and row["score"] >= 0.5
    assert phrase in row["reason"]
    assert sub_issue in json.loads(row["detail"])["fired"]


def test_normal_images_are_not_flagged(findings):
    normal = findings[findings.index.str.startswith("normal_")]
    assert len(normal) == 30 and not normal["flagged"].any()
    assert normal["reason"].isna().all()


def test_planted_images_fire_only_their_own_issues(findings):
    fired = {item: json.loads(findings.loc[item, "detail"])["fired"] for item in ("blurred", "strip", "grayscale", "rotated")}
    assert fired == {
        "blurred": ["blurry"],
        "strip": ["odd_aspect_ratio"],
        "grayscale": ["grayscale"],
        "rotated": ["exif_orientation"],
    }


def test_flat_images_are_not_called_blurry_or_grayscale(findings):
    for item in ("black", "white"):
        fired = json.loads(findings.loc[item, "detail"])["fired"]
        assert "blurry" not in fired and "grayscale" not in fired


def test_black_outranks_slightly_dark_which_outranks_normal(findings):
    dark = {item: _sub_scores(findings, item)["too_dark"] for item in ("black", "slightly_dark", "normal_03")}
    assert dark["black"] > dark["slightly_dark"] > dark["normal_03"]
    assert findings.loc["black", "score"] > findings.loc["slightly_dark", "score"]


def test_score_is_the_strongest_sub_score_and_flag_means_half(findings):
    strongest = findings["detail"].map(lambda d: max(json.loads(d)["sub_scores"].values()))
    assert np.allclose(findings["score"], strongest, atol=1e-4)
    assert (findings["flagged"] == (findings["score"] >= 0.5)).all()


def test_none_turns_rules_off(properties):
    off = check_image_quality(properties, dark_z=None, dark_brightness=None, allowed_orientations=None).set_index("item_id")
    assert "too dark" not in off.loc["black", "reason"]
    assert not off.loc["rotated", "flagged"]


def test_grayscale_is_normal_in_a_grayscale_set():
    images = [Image.fromarray(pixels).resize((SIDE, SIDE)) for pixels, _ in fashion_images(4)]
    props = pd.DataFrame([{"item_id": str(i), **measure_image(im)} for i, im in enumerate(images)])
    assert props["is_grayscale"].all()
    assert not check_image_quality(props)["flagged"].any()


def test_small_size_differences_in_a_uniform_set_are_not_odd():
    images = [Image.new("RGB", (224, 224), (i * 8, 100, 50)) for i in range(20)] + [Image.new("RGB", (236, 224), (0, 100, 50))]
    props = pd.DataFrame([{"item_id": str(i), **measure_image(im)} for i, im in enumerate(images)])
    fired = check_image_quality(props)["detail"].map(lambda d: json.loads(d)["fired"])
    assert not any("odd_size" in f or "odd_aspect_ratio" in f for f in fired)


def test_absolute_guards_work_without_a_dataset():
    props = pd.DataFrame([{"item_id": "only", **measure_image(Image.new("RGB", (1, 1)))}])
    row = check_image_quality(props).iloc[0]
    assert row["flagged"] and "odd size" in row["reason"] and "too dark" in row["reason"]


def test_findings_contract(properties):
    assert_low_quality_contract(check_image_quality, properties)


def test_missing_properties_are_named(properties):
    with pytest.raises(ValueError, match=r"properties lack columns \['gradient_energy'\]; build them with measure_image\(\)"):
        check_image_quality(properties.drop(columns="gradient_energy"))
