"""Events: the immutable records of the log, their types, validation and hashing."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from timeline.errors import EventValidationError

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64

STREAM_RE = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$")

# type -> (may open a stream, status it implies)
EVENT_TYPES: dict[str, tuple[bool, str | None]] = {
    "imposed": (True, "in_force"),
    "announced": (True, "announced"),
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
}
SUPERSEDING_TYPES = frozenset({"retraction", "correction"})
TERMINAL_TYPES = frozenset({"lifted", "expired"})

STATUSES = ("announced", "in_force", "suspended", "lifted", "expired")
LEGAL_STATUSES = ("unchallenged", "ruled_unlawful", "stayed", "invalidated")
KINDS = ("tariff", "export-control", "visa", "agreement", "diplomacy", "case", "indicator",
         "investigation", "entity-list", "trade-rule")
PRECISIONS = ("day", "month", "year")

PAYLOAD_KEYS = ("title", "set", "unset", "schedule", "affects", "affects_set", "supersedes",
                "disputed", "note", "precision")
SOURCE_KEYS = ("name", "file", "reference", "quote", "outlet", "published", "url", "document")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event offered for appending; the store assigns position, version, times and hashes."""

    stream: str
    type: str
    effective: dt.date
    payload: Mapping[str, Any]
    source: Mapping[str, Any]
    known: dt.date | None = None
    announced: dt.date | None = None
    id: str | None = None
    origin: str | None = field(default=None, compare=False)  # "file:line" for error messages

    def with_id(self, new_id: str) -> "NewEvent":
        """The same event with `id` set."""
        return NewEvent(self.stream, self.type, self.effective, self.payload, self.source,
                        self.known, self.announced, new_id, self.origin)


@dataclass(frozen=True, slots=True)
class Event:
    """An event as stored in the log."""

    position: int
    id: str
    stream: str
    version: int
    type: str
    schema_version: int
    effective: str
    announced: str | None
    known: str
    recorded_at: str
    payload: dict
    source: dict
    prev_hash: str
    hash: str

    @property
    def title(self) -> str:
        """The event's short human label."""
        return self.payload.get("title", "")

    def as_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {
            "position": self.position, "id": self.id, "stream": self.stream,
            "version": self.version, "type": self.type, "schema_version": self.schema_version,
            "effective": self.effective, "announced": self.announced, "known": self.known,
            "recorded_at": self.recorded_at, "payload": self.payload, "source": self.source,
            "prev_hash": self.prev_hash, "hash": self.hash,
        }


def row_to_event(r) -> Event:
    """Event from a row of the events table (a Row or a mapping)."""
    d = r._asdict() if hasattr(r, "_asdict") else dict(r)
    d["payload"] = json.loads(d["payload"])
    d["source"] = json.loads(d["source"])
    return Event(**d)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# One encoder for the hot paths: json.dumps would build a new one on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=_json_default)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no spaces, dates as ISO strings."""
    return _CANONICAL.encode(value)


def chain_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """SHA-256 of the previous hash and the canonical serialisation of a stored row."""
    body = "\x1f".join(
        "" if row[k] is None else str(row[k])
        for k in ("position", "id", "stream", "version", "type", "schema_version", "effective",
                  "announced", "known", "recorded_at", "payload", "source")
    )
    return hashlib.sha256((prev_hash + "\x1e" + body).encode("utf-8")).hexdigest()


def uuid7(ms: int | None = None, tail: bytes | None = None) -> str:
    """A time-ordered UUIDv7; `tail` fixes the 74 random bits (deterministic ids)."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(tail[:10] if tail else os.urandom(10), "big")
    rand_a = (rand >> 62) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def content_id(ev: NewEvent) -> str:
    """Deterministic UUIDv7 for a seed event: its known date as time, its content hash as tail.

    Reloading the same file therefore offers the same ids, which makes loading idempotent.
    """
    body = canonical_json({
        "stream": ev.stream, "type": ev.type, "effective": ev.effective,
        "announced": ev.announced, "known": ev.known, "payload": ev.payload, "source": ev.source,
    })
    digest = hashlib.sha256(body.encode("utf-8")).digest()
    day = ev.known or ev.effective
    ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    return uuid7(max(ms, 0), digest)


def reject(ev: NewEvent, fieldname: str, message: str) -> None:
    """Raise EventValidationError for `ev`, naming its file and line (from `origin`) and field."""
    file, line = None, None
    if ev.origin:
        file, _, line_s = ev.origin.rpartition(":")
        line = int(line_s) if line_s.isdigit() else None
        file = file or ev.origin
    label = f"{ev.stream or '?'} {ev.type or '?'} {ev.effective or '?'}"
    raise EventValidationError(message, file=file, event=label, field=fieldname, line=line)



def _check_state_fields(ev: NewEvent, where: str, values: Any) -> None:
    if not isinstance(values, Mapping):
        reject(ev, where, "must be a table of field = value")
    for key, value in values.items():
        name = f"{where}.{key}"
        if key in ("rate", "suspended_points", "value") and (
                isinstance(value, bool) or not isinstance(value, (int, float))):
            reject(ev, name, f"must be a number, got {value!r}")
        if key == "status" and value not in STATUSES:
            reject(ev, name, f"must be one of {', '.join(STATUSES)}; got {value!r}")
        if key == "legal_status" and value not in LEGAL_STATUSES:
            reject(ev, name, f"must be one of {', '.join(LEGAL_STATUSES)}; got {value!r}")
        if key == "kind" and value not in KINDS:
            reject(ev, name, f"must be one of {', '.join(KINDS)}; got {value!r}")


def validate(ev: NewEvent) -> None:
    """Check one event on its own (references to other events are checked by the store)."""
    if not isinstance(ev.stream, str) or not STREAM_RE.match(ev.stream):
        reject(ev, "stream", f"not a measure id (lowercase dotted path): {ev.stream!r}")
    if ev.type not in EVENT_TYPES:
        reject(ev, "type", f"unknown event type {ev.type!r}; expected one of "
                          f"{', '.join(EVENT_TYPES)}")
    for name in ("effective", "known", "announced"):
        value = getattr(ev, name)
        if value is None and name != "effective":
            continue
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            reject(ev, name, f"must be a date (YYYY-MM-DD), got {value!r}")
    p = ev.payload
    if not isinstance(p, Mapping):
        reject(ev, "payload", "must be a table")
    unknown = set(p) - set(PAYLOAD_KEYS)
    if unknown:
        reject(ev, sorted(unknown)[0], f"unknown key; expected one of {', '.join(PAYLOAD_KEYS)}")
    if not isinstance(p.get("title"), str) or not p["title"].strip():
        reject(ev, "title", "missing: every event needs a short title")
    if "set" in p:
        _check_state_fields(ev, "set", p["set"])
    if "unset" in p and not (isinstance(p["unset"], list)
                             and all(isinstance(k, str) for k in p["unset"])):
        reject(ev, "unset", "must be a list of field names")
    if "precision" in p and p["precision"] not in PRECISIONS:
        reject(ev, "precision", f"must be one of {', '.join(PRECISIONS)}")
    if "disputed" in p and not isinstance(p["disputed"], bool):
        reject(ev, "disputed", "must be true or false")
    if "schedule" in p:
        if not isinstance(p["schedule"], list):
            reject(ev, "schedule", "must be an array of { on = DATE, set = {…} }")
        for i, item in enumerate(p["schedule"]):
            where = f"schedule[{i}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("on"), str):
                reject(ev, where + ".on", "each scheduled change needs an `on` date")
            if item["on"] <= ev.effective.isoformat():
                reject(ev, where + ".on", f"scheduled date {item['on']} must be after "
                                         f"the event's effective date {ev.effective}")
            if set(item) - {"on", "set", "unset"}:
                reject(ev, where, "only `on`, `set` and `unset` are allowed")
            _check_state_fields(ev, where + ".set", item.get("set", {}))
    if "affects" in p:
        if not (isinstance(p["affects"], list) and p["affects"]
                and all(isinstance(s, str) and STREAM_RE.match(s) for s in p["affects"])):
            reject(ev, "affects", "must be a non-empty list of measure ids")
        if "affects_set" not in p:
            reject(ev, "affects_set", "required with `affects`: the fields set on those measures")
    if "affects_set" in p:
        if "affects" not in p:
            reject(ev, "affects", "required with `affects_set`")
        _check_state_fields(ev, "affects_set", p["affects_set"])
    if ev.type in SUPERSEDING_TYPES:
        sup = p.get("supersedes")
        if not (isinstance(sup, list) and sup and all(isinstance(s, str) for s in sup)):
            reject(ev, "supersedes", f"a {ev.type} must name the event ids it supersedes")
    elif "supersedes" in p:
        reject(ev, "supersedes", "only retraction and correction events supersede others")
    s = ev.source
    if not isinstance(s, Mapping):
        reject(ev, "source", "missing: every event must cite its source")
    if set(s) - set(SOURCE_KEYS):
        reject(ev, "source." + sorted(set(s) - set(SOURCE_KEYS))[0],
              f"unknown citation key; expected one of {', '.join(SOURCE_KEYS)}")
    if not isinstance(s.get("name"), str) or not s["name"].strip():
        reject(ev, "source.name", "missing: name the document or public source")
    for key in SOURCE_KEYS:
        if key in s and not isinstance(s[key], str):
            reject(ev, "source." + key, f"must be text, got {s[key]!r}")
    if s.get("file") and not s.get("quote"):
        reject(ev, "source.quote", "a citation of a source file needs a verbatim quote")
