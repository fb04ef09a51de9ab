"""Small helpers for messages."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 image', '2 images' (many: an irregular plural)."""
    return f"{n} {word if n == 1 else many or word + 's'}"
