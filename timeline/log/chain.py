"""The hash chain: one check of stored rows, shared by `verify` and `copy`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from timeline.errors import IntegrityError
from timeline.log.events import GENESIS_HASH, chain_hash


@dataclass(frozen=True, slots=True)
class Head:
    """The log's head: position and hash of its last event (0 and the genesis hash if empty)."""

    position: int
    hash: str


class ChainChecker:
    """Feed it the log's rows in position order; it raises at the first break in the chain."""

    def __init__(self, what: str = "log"):
        self.what, self.prev, self.position = what, GENESIS_HASH, 0

    def check(self, row: Mapping) -> None:
        """Check one row (a mapping of the events table's columns) against the chain so far."""
        expected = self.position + 1
        if row["position"] != expected:
            raise IntegrityError(f"{self.what} altered at position {expected}: expected position "
                                 f"{expected}, found {row['position']} (a row was deleted)",
                                 expected)
        if row["prev_hash"] != self.prev:
            raise IntegrityError(f"{self.what} altered at position {expected}: prev_hash does "
                                 f"not match the previous event's hash", expected)
        if chain_hash(self.prev, row) != row["hash"]:
            raise IntegrityError(f"{self.what} altered at position {expected}: its hash does "
                                 f"not match its contents", expected)
        self.prev, self.position = row["hash"], expected

    @property
    def head(self) -> Head:
        """The head of the rows checked so far."""
        return Head(self.position, self.prev)
