# winnow in a notebook — run top to bottom (the test suite executes this file).
#
# Audit data you already have in memory, look at what was found, and get the cleaned data back in
# the same type. Everything also lands in ./winnow.duckdb, so `winnow dashboard` shows this run.

import numpy as np
import pandas as pd

import winnow

# %% A small table of reviews, one of them pasted twice with different spacing and case.
reviews = pd.DataFrame(
    {
        "text": [
            "A gorgeous, moving portrait of a family in crisis.",
            "A tedious, overlong mess with nothing to say.",
            "a GORGEOUS, moving   portrait of a family in crisis.",
            "Sharp writing and a terrific lead performance.",
            "The plot collapses in the third act.",
            "An intelligent thriller that keeps you guessing.",
            "Preheat the oven to 200 degrees and grease a baking tray.",
        ],
        "stars": [5, 1, 5, 4, 2, 4, 3],
    }
)

# %% Audit it: texts are embedded with the bundled MiniLM model.
report = winnow.audit(reviews, labels=reviews["stars"] >= 3, name="reviews-notebook")
print(report)
print(report.summary())

# %% The most likely exact duplicates, with the reason for each.
print(report.top("exact_duplicate", 3)[["item_id", "score", "reason", "text"]])

# %% The cleaned data comes back as a DataFrame, without the flagged rows.
clean = report.clean()
print(f"{len(reviews)} rows in, {len(clean)} rows out")

# %% Bring your own embeddings (e.g. from your model): winnow skips its own.
features = np.random.default_rng(0).normal(size=(len(reviews), 16))
own = winnow.audit(reviews, embeddings=features, name="reviews-own-vectors")
print(own.info["model_id"], own.info["embed"])

# %% Hand results to other tools: a cleanlab-style issue frame and a Parquet filter list.
print(report.to_cleanlab().head())
report.filter_list("reviews-filter.parquet")
