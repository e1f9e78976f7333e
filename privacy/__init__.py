"""Right to erasure: remove one user from every layer (MongoDB, raw, stage, agg, curated, ml, ops)."""

from privacy.erasure import erase_user

__all__ = ["erase_user"]
