import numpy as np
from PIL import Image, ImageDraw

from detectors.image_match import aligned_similarity, resize_matrix


def textured(seed: int, side: int = 24) -> np.ndarray:
    """A smooth random greyscale picture (blurred noise, upsampled), so nearby pixels correlate like a photo's."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)


def cropped(image: np.ndarray, cut: int, left: int, top: int) -> np.ndarray:
    side = image.shape[0]
    region = Image.fromarray(image.astype(np.uint8)).crop((left, top, left + side - cut, top + side - cut))
    return np.asarray(region.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)


def captioned(image: np.ndarray) -> np.ndarray:
    out = Image.fromarray(image.astype(np.uint8))
    ImageDraw.Draw(out).rectangle((2, 2, 10, 7), fill=255)  # a bright caption box over ~8 % of the picture
    return np.asarray(out, dtype=np.float32)


def test_resize_matrix_keeps_constants_and_the_identity():
    for side, size in ((24, 18), (24, 24), (10, 30)):
        r = resize_matrix(side, size)
        np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(r @ np.full((side, side), 7.0) @ r.T, 7.0, rtol=1e-5)
    np.testing.assert_allclose(resize_matrix(24, 24), np.eye(24), atol=1e-6)


def test_copies_score_near_one_at_their_alignment_and_others_do_not():
    base = textured(0)
    copies = {
        "mirror": base[:, ::-1],
        "brighter": np.clip(base * 1.2 + 10, 0, 255),
        "crop": cropped(base, 4, 1, 3),
        "caption": captioned(base),
        "shift": np.pad(base, ((0, 0), (2, 0)))[:, :-2],  # moved two pixels right, black fill
    }
    others = [textured(seed) for seed in range(1, 6)]
    thumbnails = np.stack([base, *copies.values(), *others])
    n_copies = len(copies)
    pairs = np.arange(1, len(thumbnails))
    similarity = aligned_similarity(thumbnails, np.zeros(len(pairs), np.int64), pairs)
    assert similarity.shape == (len(pairs), 2)
    copy_scores, other_scores = similarity[:n_copies], similarity[n_copies:]
    assert (copy_scores[:, 0] > 0.97).all(), dict(zip(copies, copy_scores[:, 0]))
    assert copy_scores[:, 0].min() > other_scores[:, 0].max()
    assert copy_scores[:, 1].min() > other_scores[:, 1].max()  # gradients agree too


def test_trimming_forgives_a_caption_but_alignment_search_is_needed_for_a_crop():
    base = textured(7)
    thumbnails = np.stack([base, captioned(base), cropped(base, 5, 2, 2)])
    a, b = np.array([0, 0]), np.array([1, 2])
    trimmed = aligned_similarity(thumbnails, a, b)
    untrimmed = aligned_similarity(thumbnails, a, b, trim=0.0)
    assert trimmed[0, 0] > untrimmed[0, 0] and trimmed[0, 0] > 0.99
    no_crop_search = aligned_similarity(thumbnails, a, b, min_crop=1.0)
    assert trimmed[1, 0] > no_crop_search[1, 0] + 0.02


def test_flat_images_are_not_similar_to_anything():
    thumbnails = np.stack([np.zeros((24, 24)), np.full((24, 24), 200.0), textured(1)])
    similarity = aligned_similarity(thumbnails, np.array([0, 0]), np.array([1, 2]))
    assert np.abs(similarity).max() < 0.2


def test_a_crop_made_at_full_resolution_is_aligned_below_the_pixel():
    """A 13 % crop of a 96-px picture spans 20.9 thumbnail pixels from a corner at 1.25: no whole-pixel
    window fits it (gradient correlation ≤ 0.985 on these pictures); the refined box does (> 0.99)."""
    for seed in range(3):
        picture = Image.fromarray(textured(seed, side=96).astype(np.uint8))
        crop = picture.crop((5, 5, 5 + 84, 5 + 84))
        thumbnails = np.stack([np.asarray(image.resize((24, 24), Image.Resampling.BILINEAR), dtype=np.float32) for image in (picture, crop)])
        pixels, gradients = aligned_similarity(thumbnails, np.array([0]), np.array([1]))[0]
        assert pixels > 0.99 and gradients > 0.99, (seed, pixels, gradients)
