"""Rule checks: per-item rules that emit findings in the same contract as the detectors."""

from checks.corrupt import check_corrupt

__all__ = ["check_corrupt"]
