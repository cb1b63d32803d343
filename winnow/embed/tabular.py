"""Tabular encoder: standardised numeric columns plus one-hot categorical columns.

The encoder is fitted on the audited table, so its ``model_id`` carries a fingerprint of the fitted
parameters: cached vectors are reused only when the same encoding would be produced again.

Two guards keep every row's vector finite and non-zero, which the cosine kNN graph needs:

* numerics are divided by their column's largest magnitude before they are standardised. A z-score
  does not change when a column is rescaled, but the variance of a column holding 1e200 overflows
  to infinity and would zero every row's value;
* a small constant component (:data:`CENTRE`) is appended: a row exactly at the centre of the data
  (a one-row table, identical rows, only constant columns) standardises to all zeros, which has no
  direction; with the constant it points at "the centre" and matches the other rows there.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, OneHotEncoder, StandardScaler

from winnow.embed.base import l2_normalize

MAX_CATEGORIES = 50
CENTRE = 1e-3
"""The constant last component: small next to a typical row's norm (about the square root of the
number of columns), so it leaves cosines between ordinary rows practically unchanged."""
ENCODING = "v2"  # part of the fingerprint: bump when the encoding changes without the fitted parameters changing


class TabularEncoder:
    """Scaled numerics (median-imputed) and one-hot categoricals (most frequent ``MAX_CATEGORIES``)."""

    modality = "tabular"

    def __init__(self, features: pd.DataFrame, device: str = "cpu") -> None:
        self.device = "cpu"
        self.columns = list(features.columns)
        numeric = [c for c in self.columns if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c])]
        categorical = [c for c in self.columns if c not in numeric]
        transformers = []
        if numeric:
            transformers.append(("num", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), MaxAbsScaler(), StandardScaler()), numeric))
        if categorical:
            transformers.append(("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES, sparse_output=False), categorical))
        self.transformer = ColumnTransformer(transformers)
        self.transformer.fit(self._frame(features))
        self.dim = int(self.transformer.transform(self._frame(features.head(1))).shape[1]) + 1
        fingerprint = hashlib.blake2b(pickle.dumps((ENCODING, CENTRE, self.transformer)), digest_size=8).hexdigest()
        self.model_id = f"tabular-onehot-scaled:{fingerprint}"

    def _frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[self.columns].copy()
        for column in out.columns:
            if not pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column]):
                out[column] = out[column].astype(str)
        return out

    def prepare(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def embed(self, prepared: list[dict[str, Any]]) -> np.ndarray:
        encoded = np.asarray(self.transformer.transform(self._frame(pd.DataFrame(prepared, columns=self.columns))), dtype=np.float64)
        centre = np.full((len(encoded), 1), CENTRE)
        return l2_normalize(np.hstack([encoded, centre]))
