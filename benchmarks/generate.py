"""Deterministic synthetic log: N events over S streams, from one seed.

Every benchmark (ours and the references) consumes the same rows. A row is a plain tuple
(compact at a million events) with the fields of `Row`; `rows_hash` fingerprints a workload
so a test can prove that the same seed gives the same rows.

Shape of the log:
- effective dates spread over ten years (2016-2025) following a global clock, so a stream's
  events mostly arrive in valid-time order;
- a stream's first event is `imposed` (an opening type), later ones are mostly `amended`,
  some `suspended`/`resumed`, 3 % carry a `schedule` of a later change;
- 5 % retroactive: effective strictly before the stream's latest effective date (but not
  before its first, which the store would reject);
- 1 % known later than effective (by 1-365 days); the rest are known on their effective day;
- payload + citation about 300 bytes of canonical JSON.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from itertools import islice
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple, Sequence

START = dt.date(2016, 1, 1)
SPAN_DAYS = 3653  # 2016-01-01 .. 2025-12-31
RETRO_SHARE = 0.05
KNOWN_LATER_SHARE = 0.01
SCHEDULE_SHARE = 0.03
DEFAULT_SEED = 20250514

_TARGETS = ("cn", "us", "eu", "mx", "ca", "jp", "kr", "vn", "in", "all")
_PRODUCTS = ("steel", "aluminium", "solar cells", "semiconductors", "electric vehicles",
             "soybeans", "pork", "lithium batteries", "rare earths", "textiles", "furniture",
             "machine tools", "medical devices", "polysilicon", "gallium", "graphite")
_OUTLETS = ("Federal Register", "MOFCOM Announcement", "Official Journal", "USTR Notice",
            "State Council Tariff Commission", "Customs Notice", "BIS Rule")
_AUTHORITIES = ("Section 301", "Section 232", "IEEPA", "Tariff Law art. 17",
                "Regulation (EU) 2019/452", "Foreign Trade Law art. 7")


class Row(NamedTuple):
    """One generated event, in log order (position is 1-based)."""

    position: int
    id: str
    stream: str
    version: int
    type: str
    effective: str
    announced: str | None
    known: str
    payload: str  # canonical JSON
    source: str   # canonical JSON


@dataclass
class Workload:
    """The generated rows and a few facts about them."""

    seed: int
    events: int
    streams: int
    rows: list[Row]
    stats: dict = field(default_factory=dict)

    def rows_hash(self) -> str:
        """SHA-256 over every field of every row (the determinism fingerprint)."""
        return rows_hash(self.rows)

    def streams_at(self, n: int) -> list[str]:
        """Streams that exist among the first `n` rows, sorted."""
        return sorted({r.stream for r in self.rows[:n]})


def rows_hash(rows: Iterable[Row]) -> str:
    """SHA-256 over every field of every row."""
    h = RowsHash()
    for r in rows:
        h.add(r)
    return h.hexdigest()


class RowsHash:
    """`rows_hash` computed incrementally, row by row, for a workload that is streamed."""

    def __init__(self):
        self._h = hashlib.sha256()

    def add(self, r: Row) -> None:
        """Fold one row into the hash."""
        self._h.update("\x1f".join("" if v is None else str(v) for v in r).encode())
        self._h.update(b"\x1e")

    def hexdigest(self) -> str:
        """The hash of the rows added so far."""
        return self._h.hexdigest()


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _uuid7(ms: int, tail: bytes) -> str:
    rand = int.from_bytes(tail, "big")
    value = ((ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64
             | 0b10 << 62 | (rand & ((1 << 62) - 1)))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def stream_name(k: int, streams: int) -> str:
    """Id of the k-th stream, e.g. `bench.tariff.m00042.cn`."""
    return f"bench.tariff.m{k:05d}.{_TARGETS[k % len(_TARGETS)]}"


def generate(events: int, streams: int, seed: int = DEFAULT_SEED) -> Workload:
    """The workload of `events` rows over `streams` streams, fully determined by `seed`."""
    stats: dict = {}
    rows = list(generate_rows(events, streams, seed, stats))
    return Workload(seed, events, streams, rows, stats)


def generate_rows(events: int, streams: int, seed: int = DEFAULT_SEED,
                  stats: dict | None = None) -> Iterator[Row]:
    """The rows of `generate` one at a time (a 10M-row list does not fit comfortably);
    `stats` is filled in once the last row has been yielded."""
    rng = random.Random(seed)
    names = [stream_name(k, streams) for k in range(streams)]
    first: list[int | None] = [None] * streams   # first effective day offset
    latest: list[int] = [0] * streams
    version = [0] * streams
    rate = [0] * streams
    retro = known_later = scheduled = retro_debt = 0
    size = 0
    epoch_ms = int(dt.datetime(START.year, START.month, START.day,
                               tzinfo=dt.timezone.utc).timestamp() * 1000)
    for i in range(events):
        # the first S rows open the S streams in turn; after that streams are picked uniformly
        k = i if i < streams else rng.randrange(streams)
        name = names[k]
        base = int(i * SPAN_DAYS / events)
        want_retro = rng.random() < RETRO_SHARE
        product = _PRODUCTS[rng.randrange(len(_PRODUCTS))]
        outlet = _OUTLETS[rng.randrange(len(_OUTLETS))]
        doc = f"{2016 + base // 366}-{rng.randrange(10000, 99999)}"
        payload: dict = {}
        if first[k] is None:
            retro_debt += want_retro  # an opening event cannot be retroactive: owe one
            eff = base + rng.randrange(0, 7)
            first[k] = latest[k] = eff
            etype = "imposed"
            rate[k] = rng.choice((5, 7.5, 10, 15, 20, 25))
            payload["set"] = {
                "rate": rate[k], "kind": "tariff", "imposer": rng.choice(("us", "cn", "eu")),
                "target": name.rsplit(".", 1)[1], "scope": product,
                "authority": _AUTHORITIES[rng.randrange(len(_AUTHORITIES))]}
            payload["title"] = f"Tariff of {rate[k]}% imposed on {product} ({outlet} {doc})"
        else:
            can_retro = latest[k] > first[k]
            if (want_retro or retro_debt) and can_retro:
                if not want_retro:
                    retro_debt -= 1
                eff = rng.randrange(first[k], latest[k])
                retro += 1
            else:
                if want_retro:
                    retro_debt += 1
                eff = max(base + rng.randrange(-3, 4), latest[k] + 1)
                latest[k] = eff
            roll = rng.random()
            if roll < 0.06:
                etype, change = "suspended", {"suspended_points": rate[k]}
                payload["title"] = f"Tariff on {product} suspended pending review ({doc})"
            elif roll < 0.12:
                etype, change = "resumed", {"suspended_points": 0}
                payload["title"] = f"Tariff on {product} resumed after review ({doc})"
            else:
                etype = "amended"
                rate[k] = max(0, rate[k] + rng.choice((-10, -5, -2.5, 2.5, 5, 10, 15)))
                change = {"rate": rate[k]}
                payload["title"] = f"Tariff on {product} changed to {rate[k]}% ({outlet} {doc})"
            change["authority"] = _AUTHORITIES[rng.randrange(len(_AUTHORITIES))]
            payload["set"] = change
            if etype == "amended" and rng.random() < SCHEDULE_SHARE / 0.88:
                on = START + dt.timedelta(days=eff + rng.randrange(30, 181))
                payload["schedule"] = [{"on": on.isoformat(),
                                        "set": {"rate": rate[k] + 5}}]
                scheduled += 1
        if rng.random() < 0.3:
            payload["note"] = (f"Covers HS chapters {rng.randrange(1, 97):02d} and "
                               f"{rng.randrange(1, 97):02d}; see annex {rng.randrange(1, 9)}.")
        later = rng.random() < KNOWN_LATER_SHARE
        known_off = eff + (rng.randrange(1, 366) if later else 0)
        known_later += later
        announced = (START + dt.timedelta(days=eff - rng.randrange(0, 31))).isoformat() \
            if rng.random() < 0.2 else None
        source = {"name": f"{outlet} {doc}", "reference": f"bench/{doc}", "outlet": outlet,
                  "url": f"https://example.org/notices/{doc}"}
        version[k] += 1
        ev_id = _uuid7(epoch_ms + known_off * 86_400_000 + (i % 86_400_000),
                       rng.getrandbits(80).to_bytes(10, "big"))
        p_json, s_json = _canonical(payload), _canonical(source)
        size += len(p_json) + len(s_json)
        yield Row(i + 1, ev_id, name, version[k], etype,
                  (START + dt.timedelta(days=eff)).isoformat(), announced,
                  (START + dt.timedelta(days=known_off)).isoformat(), p_json, s_json)
    if stats is not None:
        stats.update({"retroactive": retro, "known_later": known_later,
                      "scheduled": scheduled, "mean_json_bytes": round(size / max(events, 1), 1),
                      "streams_opened": sum(1 for f in first if f is not None)})


def new_events(rows: Sequence[Row]) -> list:
    """The rows as `timeline.events.NewEvent`s (what the public append API takes)."""
    from timeline.log.events import NewEvent

    d = dt.date.fromisoformat
    return [NewEvent(r.stream, r.type, d(r.effective), json.loads(r.payload),
                     json.loads(r.source), d(r.known),
                     d(r.announced) if r.announced else None, r.id) for r in rows]


def batches(rows: Iterable[Row], size: int) -> Iterator[Sequence[Row]]:
    """Consecutive lists of `size` rows (the last may be shorter), from a list or a stream."""
    it = iter(rows)
    while b := list(islice(it, size)):
        yield b


def query_pairs(rows: Sequence[Row], n: int, seed: int, upto: int | None = None,
                ) -> list[tuple[str, str]]:
    """`n` random (stream, date) pairs over the streams among the first `upto` rows."""
    rng = random.Random(seed)
    upto = len(rows) if upto is None else upto
    streams = sorted({r.stream for r in rows[:upto]})
    out = []
    for _ in range(n):
        day = START + dt.timedelta(days=rng.randrange(SPAN_DAYS))
        out.append((streams[rng.randrange(len(streams))], day.isoformat()))
    return out
