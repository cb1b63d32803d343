import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.conftest import fashion_images
from winnow.embed import embed_payloads, get_embedder, resolve_device
from winnow.errors import ConfigError, ModelError


@pytest.fixture(scope="module")
def fashion_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    paths = []
    for i, (pixels, label) in enumerate(fashion_images(4, classes=(1, 7))):
        path = root / f"{label}_{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def test_efficientnet_vectors_are_unit_and_group_by_class(fashion_files):
    embedder = get_embedder(None, "image", "cpu")
    assert embedder.model_id == "efficientnet-lite0" and embedder.dim == 1280
    result = embed_payloads(embedder, fashion_files, batch_size=3)
    v = result.vectors
    assert v.shape == (8, 1280) and v.dtype == np.float32 and not result.errors
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    same = sims[:4, :4][~np.eye(4, dtype=bool)].mean()
    across = sims[:4, 4:].mean()
    assert same > across + 0.1  # trousers resemble trousers more than sneakers


def test_batching_does_not_change_vectors(fashion_files):
    embedder = get_embedder(None, "image", "cpu")
    one = embed_payloads(embedder, fashion_files[:4], batch_size=1).vectors
    four = embed_payloads(embedder, fashion_files[:4], batch_size=4).vectors
    np.testing.assert_allclose(one, four, atol=1e-4)


def test_bad_file_is_reported_not_raised(fashion_files, tmp_path):
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(open(fashion_files[0], "rb").read()[:60])
    result = embed_payloads(get_embedder(None, "image", "cpu"), [fashion_files[0], str(truncated), fashion_files[1]], batch_size=2)
    assert result.ok == [0, 2] and list(result.errors) == [1]
    assert "cannot decode" in result.errors[1]


def test_minilm_ranks_paraphrase_above_unrelated():
    embedder = get_embedder("minilm", "text", "cpu")
    v = embed_payloads(embedder, ["A cat sits on the mat.", "There is a cat sitting on a mat.", "Quarterly revenue rose 4%."]).vectors
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > 0.7 > v[0] @ v[2]


def test_texts_are_embedded_shortest_first_and_returned_in_their_own_order():
    texts = ["a much longer review that goes on about the plot, the actors and the score " * 3, "short", "", "medium length text here"]
    embedder = get_embedder(None, "text", "cpu")
    batched = embed_payloads(embedder, texts, batch_size=2)
    assert batched.ok == [0, 1, 2, 3]
    alone = np.concatenate([embed_payloads(embedder, [t], batch_size=1).vectors for t in texts])
    np.testing.assert_allclose(batched.vectors, alone, atol=1e-5)  # padding with neighbours of similar length changes nothing


def test_tabular_encoder_scales_and_one_hot_encodes():
    frame = pd.DataFrame({"x": [1.0, 1.1, 5.0, np.nan], "colour": ["red", "red", "blue", None]})
    embedder = get_embedder(None, "tabular", features=frame)
    v = embed_payloads(embedder, frame.to_dict(orient="records")).vectors
    assert v.shape[0] == 4 and embedder.model_id.startswith("tabular-onehot-scaled:")
    assert v.shape[1] == 1 + 3 + 1  # one scaled numeric, three colour levels (missing is a level), the centre component
    assert v[0] @ v[1] > 0.99 and v[0] @ v[1] > v[0] @ v[2]
    assert get_embedder(None, "tabular", features=frame).model_id == embedder.model_id
    assert get_embedder(None, "tabular", features=frame.assign(x=frame.x * 2)).model_id != embedder.model_id


@pytest.fixture(scope="module")
def tiny_clip_checkpoint(tmp_path_factory):
    """A small open_clip model built with pretrained=None and saved: stands in for a user's checkpoint."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (folder / "winnow-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "winnow-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("winnow-tiny-clip", pretrained=None)
    torch.save(model.state_dict(), folder / "tiny.pt")
    return folder / "tiny.pt", model


def test_open_clip_loads_the_user_checkpoint(tiny_clip_checkpoint, fashion_files):
    path, original = tiny_clip_checkpoint
    embedder = get_embedder(f"open_clip:winnow-tiny-clip:{path}", "image", "cpu")
    loaded = embedder.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in original.state_dict().items())
    v = embed_payloads(embedder, fashion_files[:2]).vectors
    assert v.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    texts = embed_payloads(get_embedder(f"open_clip:winnow-tiny-clip:{path}", "text", "cpu"), ["a shoe", "a photo of trousers"]).vectors
    assert texts.shape == (2, 32)


class _RunsCodeWhenUnpickled:
    """Stands in for a booby-trapped checkpoint: unpickling it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tiny_clip_checkpoint, tmp_path):
    _, model = tiny_clip_checkpoint
    marker = tmp_path / "code-ran"
    trap = tmp_path / "trap.pt"
    torch.save({"state_dict": model.state_dict(), "extra": _RunsCodeWhenUnpickled(marker)}, trap)
    with pytest.raises(ModelError, match="cannot load"):
        get_embedder(f"open_clip:winnow-tiny-clip:{trap}", "image", "cpu")
    assert not marker.exists()  # loaded with weights_only=True: the object was refused, not built


def test_model_spec_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        get_embedder(f"open_clip:ViT-B-32:{tmp_path / 'missing.pt'}", "image", "cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load"):
        get_embedder(f"open_clip:ViT-B-32:{tmp_path / 'junk.pt'}", "image", "cpu")
    with pytest.raises(ConfigError, match="incomplete"):
        get_embedder("open_clip:ViT-B-32", "image")
    with pytest.raises(ConfigError, match="unknown model"):
        get_embedder("resnet9000", "image")
    with pytest.raises(ConfigError, match="embeds text data"):
        get_embedder("minilm", "image")


def test_device_resolution():
    assert resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_sixteen_bit_image_embeds_like_its_8_bit_twin(fashion_files, tmp_path):
    """Pillow's own I;16 -> RGB conversion clips at 255 (a white frame); load_rgb scales instead."""
    from winnow.embed.images import load_rgb

    pixels = np.asarray(Image.open(fashion_files[0]))
    deep = tmp_path / "deep.png"
    Image.fromarray(pixels.astype(np.uint16) * 257).save(deep)
    assert Image.open(deep).mode == "I;16"
    assert np.array_equal(np.asarray(load_rgb(str(deep))), np.asarray(load_rgb(fashion_files[0])))
    v = embed_payloads(get_embedder(None, "image", "cpu"), [str(deep), fashion_files[0]]).vectors
    assert v[0] @ v[1] > 0.999


def test_unusable_vectors_are_reported_not_kept():
    from winnow.embed.runner import unusable_vectors

    class Echo:
        model_id, modality, device, dim = "echo", "tabular", "cpu", 3

        def prepare(self, payload):
            return payload

        def embed(self, prepared):
            return np.array(prepared, dtype=np.float32)

    payloads = [[1, 0, 0], [np.nan, 0, 1], [0, 0, 0], [0, np.inf, 0], [0, 1, 0]]
    result = embed_payloads(Echo(), payloads, batch_size=2)
    assert result.ok == [0, 4] and sorted(result.errors) == [1, 2, 3]
    assert "NaN" in result.errors[1] and "all zeros" in result.errors[2] and "infinite" in result.errors[3]
    np.testing.assert_array_equal(result.vectors, [[1, 0, 0], [0, 1, 0]])
    assert unusable_vectors(np.zeros((0, 3), np.float32)) == {}


def test_tabular_encoder_survives_extreme_values_and_a_single_row():
    """A value of 1e300 overflows the column variance, and one row standardises to all zeros: both used
    to give zero vectors for every row; rescaling first and the centre component prevent it."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 1e300], "y": [0.5, 0.1, 0.9, 0.3, 0.7]})
    extreme = embed_payloads(get_embedder(None, "tabular", features=frame), frame.to_dict(orient="records"))
    assert extreme.errors == {} and np.isfinite(extreme.vectors).all()
    np.testing.assert_allclose(np.linalg.norm(extreme.vectors, axis=1), 1.0, rtol=1e-5)
    # z-scores ignore the scale of a column: the same table with x shrunk gives the same vectors
    small = frame.assign(x=frame.x / 1e290)
    np.testing.assert_allclose(embed_payloads(get_embedder(None, "tabular", features=small), small.to_dict(orient="records")).vectors, extreme.vectors, atol=1e-5)
    one = frame.head(1)
    single = embed_payloads(get_embedder(None, "tabular", features=one), one.to_dict(orient="records"))
    assert single.errors == {} and single.ok == [0]


def test_a_grey_image_is_prepared_exactly_like_its_rgb_twin(fashion_files, tmp_path):
    """Grey images are resized before they are made RGB (a third of the work): the pixels must not change."""
    from winnow.embed.images import EfficientNetLite0

    twin = tmp_path / "rgb.png"
    Image.open(fashion_files[0]).convert("RGB").save(twin)
    embedder = EfficientNetLite0("cpu")
    grey, rgb = embedder.prepare(fashion_files[0]), embedder.prepare(str(twin))
    assert grey.shape == (224, 224, 3) and grey.dtype == np.float32
    assert np.array_equal(grey, rgb)


def test_model_weights_load_on_first_embed_only():
    """A re-audit served by the vector cache builds the embedder for its model id but never embeds."""
    from winnow.embed.images import EfficientNetLite0
    from winnow.embed.texts import MiniLM

    image, text = EfficientNetLite0("cpu"), MiniLM("cpu")
    assert "model" not in vars(image) and "model" not in vars(text)
    assert image.model_id == "efficientnet-lite0" and text.model_id == "all-minilm-l6-v2"
    assert text.embed([text.prepare("a cat on a mat")]).shape == (1, 384)
    assert "model" in vars(text)
