"""Extract: MongoDB collections -> warehouse schema ``raw`` with dlt (docs/extract.md).

Public API: :func:`load_raw`. Heavy imports (dlt, pyarrow) happen on first use, so DAG parsing
stays cheap.
"""

from __future__ import annotations


def load_raw(collections: list[str] | None = None, progress: bool = False, **kwargs) -> dict:
    """Load the new documents of ``collections`` (default: all) into ``raw`` once; see
    :func:`dlt_pipelines.pipeline.load_raw`."""
    from dlt_pipelines.pipeline import load_raw as _load_raw

    return _load_raw(collections, progress, **kwargs)


__all__ = ["load_raw"]
