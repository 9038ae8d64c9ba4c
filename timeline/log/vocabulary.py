"""The event vocabulary: event types, statuses, kinds and confidences.

Plain names every layer shares, kept apart from the schema's structs in `validation` (which
declares the event-file schema from them) so that a reader can know which types supersede
others without importing the validator.
"""
from __future__ import annotations

# type -> (may open a stream, status it implies)
EVENT_TYPES: dict[str, tuple[bool, str | None]] = {
    "imposed": (True, "in_force"),
    "announced": (True, "announced"),
    "threatened": (True, "threatened"),  # a threat: never a rate until imposed
    "opened": (True, None),
    "observed": (True, None),
    "meeting": (True, None),
    "statement": (True, None),
    "ruling": (True, None),
    "amended": (False, None),
    "suspended": (False, "suspended"),
    "resumed": (False, "in_force"),
    "lifted": (False, "lifted"),
    "expired": (False, "expired"),
    "licensed": (False, None),
    "retraction": (False, None),
    "correction": (False, None),
    "reviewed": (True, None),  # sources checked through `effective`: moves the horizon
    # its title becomes the measure's catalogue title (charts, the REPL, the report); it
    # changes no state
    "retitled": (False, None),
}
SUPERSEDING_TYPES = frozenset({"retraction", "correction"})
STATUSES = ("announced", "threatened", "in_force", "suspended", "lifted", "expired", "withdrawn")
# challenged: suits filed, no ruling yet; pending: awaiting a decision (e.g. on appeal)
LEGAL_STATUSES = ("unchallenged", "challenged", "pending", "ruled_unlawful", "stayed",
                  "invalidated")
KINDS = ("tariff", "export-control", "visa", "agreement", "diplomacy", "case", "indicator",
         "investigation", "entity-list", "trade-rule", "exemption", "product")
PRECISIONS = ("day", "month", "year")
# how far the sources vouch for an event, weakest first: unqualified events are confirmed
# (two independent pages, or one official or major outlet)
CONFIDENCES = ("single-source",)
