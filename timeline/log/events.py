"""Events: the immutable records of the log, their types, validation and hashing."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, NoReturn

import msgspec

from timeline.errors import EventValidationError

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64

TERMINAL_TYPES = frozenset({"lifted", "expired"})


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
        """The same event with `id` set (unchecked again: an id is part of what is checked)."""
        return NewEvent(self.stream, self.type, self.effective, self.payload, self.source,
                        self.known, self.announced, new_id, self.origin)


@dataclass(frozen=True, slots=True)
class CheckedEvent(NewEvent):
    """A NewEvent the event schema and its rules admitted (made only by
    `timeline.log.validation.admit`), with the canonical JSON of the payload and source that
    were checked: the store writes that text, so what is stored is what was checked, and an
    append does not check the event again unless its payload changed since."""

    payload_json: str = field(default="", repr=False, compare=False)
    source_json: str = field(default="", repr=False, compare=False)
    seal: object = field(default=None, repr=False, compare=False)  # validation's own token


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
    d["payload"] = loads(d["payload"])
    d["source"] = loads(d["source"])
    return Event(**d)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# One encoder for the hot paths: json.dumps would build a new one on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=_json_default, allow_nan=False)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no spaces, dates as ISO strings; a NaN or an
    infinity is refused (EventValidationError), never written as invalid JSON."""
    fast = _fast_canonical(value)
    if fast is not None:
        return fast
    try:
        return _CANONICAL.encode(value)
    except ValueError as exc:
        raise EventValidationError(f"cannot store a non-finite number ({exc})") from None


def plain_float(literal: str) -> float:
    """A JSON number whose text msgspec and `json` write alike (ValueError for any other).

    Python's repr (what `json` writes) switches to an exponent below 1e-4 and from 1e16
    ("1e+16", "1e-05"); msgspec writes "1e16", "0.00001". A literal in exponent form, or a
    value whose repr has one (or is not finite), is refused: the decoder hook of both fast
    paths (`_fast_canonical`'s check, and payloads read for `canonical_json_plain`)."""
    if "e" in literal or "E" in literal:
        raise ValueError(literal)
    value = float(literal)
    text = repr(value)
    if "e" in text or "n" in text:
        raise ValueError(literal)
    return value


_FAST_ENCODER = msgspec.json.Encoder(order="sorted")
_CHECK_DECODER = msgspec.json.Decoder(float_hook=plain_float)


def _fast_canonical(value: Any) -> str | None:
    """The canonical text by msgspec (several times faster), or None where it could differ.

    The hash chain is computed over this text, so it must be byte-identical to the `json`
    encoder's: the text is decoded again and must give back `value` itself, which refuses
    everything msgspec writes but `json` would not (NaN and infinity as null, sets, bytes,
    datetimes, decimals, tuples, dataclasses), and floats in exponent form are refused by
    the decoder's hook. Strings, integers, key order and escapes are the same in both
    (tests/test_canonical_json.py compares them on generated values).
    """
    try:
        out = _FAST_ENCODER.encode(value)
        if _CHECK_DECODER.decode(out) != value:
            return None
    except Exception:  # noqa: BLE001 - anything msgspec refuses is the json encoder's to judge
        return None
    return out.decode("utf-8")


def canonical_json_plain(value: Any) -> str:
    """`canonical_json` of a value whose floats all passed `plain_float` (decoded through
    it), by msgspec without `_fast_canonical`'s decode-again check: strings, integers, key
    order and such floats are written alike by both encoders."""
    try:
        return _FAST_ENCODER.encode(value).decode("utf-8")
    except Exception:  # noqa: BLE001 - whatever msgspec refuses is canonical_json's to judge
        return canonical_json(value)


def loads(text: str | bytes) -> Any:
    """JSON text to Python values, as `json.loads` gives them (msgspec when it can: faster;
    `json` for what msgspec refuses, such as the NaN an earlier version may have stored)."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


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


def reject(ev: NewEvent, fieldname: str | None, message: str) -> NoReturn:
    """Raise EventValidationError for `ev`, naming its file and line (from `origin`) and field."""
    label = " ".join(_label_part(getattr(ev, k, None)) for k in ("stream", "type", "effective"))
    reject_at(getattr(ev, "origin", None), label, fieldname, message)


def reject_at(origin: str | None, label: str, fieldname: str | None, message: str) -> NoReturn:
    """Raise EventValidationError for the event `label` at `origin` ("file:line" or a file):
    the one builder of an event's refusal, wherever it is found."""
    file, line = None, None
    if origin:
        file, _, line_s = origin.rpartition(":")
        line = int(line_s) if line_s.isdigit() else None
        file = file or origin
    raise EventValidationError(message, file=file, event=label, field=fieldname or None,
                               line=line)


def _label_part(value: Any) -> str:
    """One part of an event's label: a value as given, or "?" where it is missing or is not
    text or a date (an API caller may pass anything; the label must still print)."""
    if isinstance(value, (str, dt.date)) and value:
        return str(value)[:120]
    return "?"


IDENTITY_FIELDS = ("stream", "type", "effective", "announced", "known", "payload", "source")


def identity(ev: NewEvent) -> tuple:
    """What makes two events with one id the same event (IDENTITY_FIELDS, as stored text):
    everything but the id, the origin and what the store assigns. The one definition every
    same-id check uses: in a batch, and against the log."""
    if isinstance(ev, CheckedEvent):
        payload, source = ev.payload_json, ev.source_json
    else:
        payload, source = canonical_json(ev.payload), canonical_json(ev.source)
    return (ev.stream, ev.type, _iso(ev.effective), _iso(ev.announced), _iso(ev.known),
            payload, source)


def identity_differences(offered: NewEvent, other: tuple, *, stored: bool = False) -> list[str]:
    """The IDENTITY_FIELDS in which `offered` differs from another event's `identity`; against
    a `stored` one, a `known` the offered event leaves out matches (the log assigned it)."""
    mine = identity(offered)
    return [name for name, a, b in zip(IDENTITY_FIELDS, mine, other)
            if a != b and not (stored and name == "known" and offered.known is None)]


def _iso(day: Any) -> Any:
    return day.isoformat() if isinstance(day, dt.date) else day
