"""``make bench-quality``: winnow against cleanlab Datalab, CleanVision and single-signal baselines.

Usage: ``python -m bench.run_quality [--datasets images,texts,breast_cancer] [--seed 7] [--keep-cache]``
from the repository root (the work is in ``bench/quality.py``).
"""

from bench.quality import main

if __name__ == "__main__":
    raise SystemExit(main())
