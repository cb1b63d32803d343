import numpy as np
import pytest
from PIL import Image

from winnow.embed.thumbnails import THUMBNAIL_SIDE, decode_thumbnails, thumbnail


def test_thumbnail_round_trips_as_a_small_greyscale_array():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((90, 60, 3)) * 255).astype(np.uint8), "RGB")
    gradient = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1)), "L")
    decoded = decode_thumbnails([thumbnail(rgb), thumbnail(gradient)])
    assert decoded.shape == (2, THUMBNAIL_SIDE, THUMBNAIL_SIDE) and decoded.dtype == np.uint8
    row = decoded[1, 5].astype(int)
    assert (np.diff(row) > 0).all() and row[0] < 20 and row[-1] > 230  # left dark, right bright, kept in order


def test_sixteen_bit_images_are_scaled_not_clipped():
    deep = Image.fromarray(np.tile(np.linspace(1000, 60000, 32).astype(np.uint16), (32, 1)))
    small = decode_thumbnails([thumbnail(deep)])[0].astype(int)
    assert small[:, 0].mean() < 20 and small[:, -1].mean() > 235


def test_thumbnails_of_different_sides_are_refused():
    with pytest.raises(ValueError, match="same thumbnail side"):
        decode_thumbnails([thumbnail(Image.new("L", (8, 8)), side=8), thumbnail(Image.new("L", (8, 8)))])
    assert decode_thumbnails([]).shape == (0, THUMBNAIL_SIDE, THUMBNAIL_SIDE)
