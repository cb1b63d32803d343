"""winnow: dataset QA and cleaning for image, text and tabular data.

``winnow.audit(source, …)`` runs the Prefect audit flow and writes findings to DuckDB; the
``winnow`` command line and the dashboard are built on the same functions.
"""

from winnow.api import audit, resume

__version__ = "0.1.0"
__all__ = ["audit", "resume", "__version__"]
