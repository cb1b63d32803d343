import numpy as np
import pandas as pd
import pytest

from winnow.embed import l2_normalize


def make_items(n: int, hashes: dict[int, str] | None = None) -> pd.DataFrame:
    """Items frame with ids ``i0…``, ingest order and distinct hashes unless overridden."""
    content = [f"h{i}" for i in range(n)]
    for i, h in (hashes or {}).items():
        content[i] = h
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "ordinal": range(n), "content_hash": content})


@pytest.fixture
def clusters() -> np.ndarray:
    """Three tight clusters of 10 in 8-d, plus one vector pointing elsewhere (index 30)."""
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 5
    points = [c + rng.normal(scale=0.6, size=(10, 8)) for c in centres]
    far = np.zeros((1, 8))
    far[0, 7] = 5
    return l2_normalize(np.vstack(points + [far]))


def upright_shapes(n: int, seed: int = 0) -> np.ndarray:
    """``n`` 24×24 greyscale thumbnails of one upright shape (a wide bright block on a thin stem),
    jittered in size, position and brightness, on a dark noisy background."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, size=(n, 24, 24)).astype(np.float64)
    for image in images:
        left, width, top = int(rng.integers(3, 6)), int(rng.integers(13, 17)), int(rng.integers(2, 4))
        image[top : top + 7, left : left + width] = rng.uniform(180, 255)
        stem = left + width // 2
        image[top + 7 : 22, stem - 1 : stem + 1] = rng.uniform(150, 220)
    return images.clip(0, 255).astype(np.uint8)
