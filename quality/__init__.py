"""Data quality: a Great Expectations checkpoint over each raw increment (quarantine, never halt)."""

from quality.checkpoint import validate_raw_increment

__all__ = ["validate_raw_increment"]
