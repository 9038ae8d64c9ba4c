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


# Country names people write where the language wants a code. Only codes the log really
# uses are ever suggested (the caller checks), so a name here costs nothing when absent.
COUNTRY_CODES = {
    "china": "cn", "prc": "cn", "chn": "cn", "people's republic of china": "cn",
    "mainland china": "cn", "chinese": "cn",
    "united states": "us", "united states of america": "us", "usa": "us", "america": "us",
    "u.s.": "us", "u.s.a.": "us", "american": "us", "united-states": "us",
    "everyone": "all", "world": "all", "global": "all",
}


def country_code(name: str, codes: Iterable[str]) -> str | None:
    """The code of a country written by name (`china` → `cn`), if the log uses that code."""
    code = COUNTRY_CODES.get(" ".join(name.lower().replace("_", " ").split()))
    return code if code is not None and code in set(codes) else None
