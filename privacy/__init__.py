"""Privacy (DESIGN §4, docs/privacy.md): the right to erasure, everywhere the platform keeps a user's data."""

from privacy.erasure import erase_user

__all__ = ["erase_user"]
