"""'Did you mean …?': the closest of the words a user could have meant."""
from __future__ import annotations

from typing import Iterable


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word` (case-insensitive), or None if none is close."""
    import difflib  # only a mistake needs it: not on a query's start-up path

    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None
