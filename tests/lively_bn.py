"""Kept for imports of ``lively_bn``; the helpers live in ``helpers.py``."""
from helpers import lively_bn  # noqa: F401
