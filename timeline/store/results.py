"""What an append reports: kept apart from the append itself, so that the API (and every
read through it) imports neither the write path nor SQLAlchemy to name these types."""
from __future__ import annotations

from dataclasses import dataclass, field

from timeline.log.events import Event


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did (or, for a dry run, would do): the events written, how many
    offered ones were already there, and for a dry run the state changes it would make."""

    appended: list[Event]
    skipped: int
    changes: list["StateChange"] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class StateChange:
    """How one measure's state over valid time would change: (date, field, before, after)."""

    stream: str
    new: bool
    differences: list[tuple[str, str, object, object]]
