import numpy as np

from detectors import image_evidence
from detectors.image_evidence import TRANSFORMS, orientation_gain
from tests.detectors.conftest import upright_shapes

NAMES = list(TRANSFORMS)


def test_misoriented_and_inverted_images_gain_most_and_say_how():
    images = upright_shapes(60, seed=0)
    images[57] = np.rot90(images[57], 1)  # stored rotated by 90°: turning it 270° more fixes it
    images[58] = images[58][::-1]
    images[59] = 255 - images[59]
    gain, best = orientation_gain(images, k=5)
    assert set(np.argsort(-gain)[:3]) == {57, 58, 59}
    assert NAMES[best[57]] == "rotated by 270°"
    assert NAMES[best[58]] in ("flipped upside down", "rotated by 180°")
    assert NAMES[best[59]] == "inverted (a negative)"
    assert np.median(gain[:57]) < 0  # upright images fit worse turned


def test_a_symmetric_image_does_not_match_itself_turned(monkeypatch):
    """A symmetric image's turned version equals the image: it must not count as its own neighbour
    (it would gain without bound), so it gains nothing — less than a flipped image."""
    images = upright_shapes(31, seed=1)
    images[29] = 0
    images[29, 8:16, 8:16] = 255  # a centred square: every turn maps it onto itself
    images[30] = images[30][::-1]
    gain, _ = orientation_gain(images, k=3)
    assert abs(gain[29]) < 0.1 and np.argmax(gain) == 30
    monkeypatch.setattr(image_evidence, "REFERENCE_SAMPLE", 20)  # against a sample of the images: the same answer
    sampled, _ = orientation_gain(images, k=3)
    assert np.argmax(sampled) == 30
