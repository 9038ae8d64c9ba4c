"""The tariffs, exemptions and product groups of a log, read once per log head.

A product answer needs the state of every tariff that may cover a code on a day; read
measure by measure that is one indexed lookup per tariff, per day of a history. A Scene
reads every interval (and, for `known on`, every knowledge row) of those streams once,
indexes the streams by the HTS prefixes they ever name, and is cached per database and log
head: the projections equal a fold of the log up to its head, so while the head is the same
so is everything a Scene holds. A new event moves the head and the next read builds anew.
"""
from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from json import loads

from timeline.projections.reader import Reader
from timeline.projections.scopes import Measure, hts_digits, scope_of

KINDS = ("tariff", "exemption", "product")
GROUP_PREFIX = "product."
_CACHE: "OrderedDict[tuple, _Index]" = OrderedDict()
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()


class _Stream:
    __slots__ = ("stream", "kind", "imposer", "target", "title", "froms", "rows", "known",
                 "scopes")

    def __init__(self, entry, rows: list[tuple]):
        self.stream, self.kind, self.imposer = entry.stream, entry.kind, entry.imposer
        self.target, self.title = entry.target, entry.title
        self.rows = [(vf, vt, loads(st), loads(ids)) for vf, vt, st, ids in rows]
        self.scopes: dict[int, object] = {}  # id(state) -> Scope, for states this holds
        self.froms = [r[0] for r in self.rows]
        self.known: list[tuple] | None = None

    def prefixes(self) -> tuple[set[str], bool]:
        """Every HTS prefix any interval names, and whether some interval covers codes it
        does not name (all goods, or coverage partial or not given)."""
        found: set[str] = set()
        always = False
        for _, _, st, _ in self.rows:
            named = [*(st.get("hts") or ()), *(st.get("hts_rates") or {})]
            within = list(st.get("hts_within") or ())
            # a disputed claim's lines: the answer shows what the claim would change
            claimed = [p for d in st.get("disputed") or () if isinstance(d, dict)
                       for p in (d.get("claims") or {}).get("hts") or ()]
            found.update(d for d in (hts_digits(str(p)) for p in claimed) if d)
            # `hts_within` bounds the lines the log lacks: indexed like named lines, since a
            # code outside them is not covered
            found.update(d for d in (hts_digits(str(p)) for p in named + within) if d)
            if not within and (not named or st.get("hts_coverage") == "partial"):
                always = True
        return found, always


class _Index:
    """The streams of the kinds a product answer reads, at one log head."""

    def __init__(self, r: Reader):
        catalogue = r.catalogue()
        # every code a measure is imposed by or on: what `from <origin>` is checked against
        self.jurisdictions = {j for e in catalogue for j in (e.imposer, e.target) if j}
        entries = [e for e in catalogue if e.kind in KINDS]
        rows = r.interval_rows([e.stream for e in entries])
        self.streams = {e.stream: _Stream(e, rows[e.stream]) for e in entries}
        self.by_prefix: dict[str, set[str]] = {}
        self.broad: dict[str, set[str]] = {}  # a shorter code's streams naming longer lines
        self.always: set[str] = set()
        self.group_prefix: dict[str, set[str]] = {}  # the same, for product groups
        for s in self.streams.values():
            if s.kind == "product":
                found, _ = s.prefixes()
                for p in found:
                    for n in range(2, len(p) + 1, 2):
                        self.group_prefix.setdefault(p[:n], set()).add(s.stream)
                continue
            found, always = s.prefixes()
            if always:
                self.always.add(s.stream)
            for p in found:
                self.by_prefix.setdefault(p, set()).add(s.stream)
                for n in range(2, len(p), 2):
                    self.broad.setdefault(p[:n], set()).add(s.stream)
        self.known_loaded = False
        self.titles = {s.stream: s.title for s in self.streams.values()}
        self.by_kind: dict[tuple[str, str | None], list[str]] = {}
        for name in sorted(self.streams):
            data = self.streams[name]
            if data.imposer is not None:
                self.by_kind.setdefault((data.kind, data.imposer), []).append(name)
            self.by_kind.setdefault((data.kind, None), []).append(name)

    def load_known(self, r: Reader) -> None:
        if self.known_loaded:
            return
        rows = r.known_rows(list(self.streams))
        for s, data in self.streams.items():
            data.known = [(vf, kf, kt, loads(st), loads(ids)) for vf, kf, kt, st, ids in rows[s]]
        self.known_loaded = True

    def groups_near(self, code: str) -> set[str]:
        """Groups that ever name a prefix of `code` or a line under it."""
        out = set(self.group_prefix.get(code, ()))
        for n in range(2, len(code), 2):
            out |= {g for g in self.group_prefix.get(code[:n], ())
                    if any(code.startswith(p) for p in self._group_lines(g))}
        return out

    def _group_lines(self, group: str) -> set[str]:
        found, _ = self.streams[group].prefixes()
        return found

    def candidates(self, code: str) -> set[str]:
        """Streams that may cover `code`: those naming one of its prefixes or a line under
        it, and those covering codes they do not name."""
        out = set(self.always) | self.broad.get(code, set())
        for n in range(2, len(code) + 1, 2):
            out |= self.by_prefix.get(code[:n], set())
        return out


def _index(r: Reader) -> _Index:
    head = r.head()
    key = (r.where, head.position, head.hash)
    # `timeline serve` answers from several threads: the cache's bookkeeping is locked (a
    # dropped entry must not vanish between a lookup and its move), the build is not
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    built = _Index(r)
    with _CACHE_LOCK:
        found = _CACHE.setdefault(key, built)
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return found


class Scene:
    """The measures, exemptions and product groups of one imposer, as one answer reads them."""

    def __init__(self, r: Reader, imposer: str = "us"):
        self.r = r
        self.index = _index(r)
        self.titles = self.index.titles
        self.tariffs = self.index.by_kind.get(("tariff", imposer), [])
        self.exemptions = self.index.by_kind.get(("exemption", imposer), [])
        self.groups = self.index.by_kind.get(("product", None), [])

    def row(self, stream: str, day: str, known: str | None):
        """(state, since, until, event ids) of `stream` on `day` as known on `known`."""
        data = self.index.streams.get(stream)
        if data is None:
            return None
        if known is None:
            i = bisect.bisect_right(data.froms, day) - 1
            if i < 0:
                return None
            vf, vt, st, ids = data.rows[i]
            return None if vt is not None and vt <= day else (st, vf, vt, ids)
        self.index.load_known(self.r)
        held = [row for row in data.known or () if row[1] <= known
                and (row[2] is None or row[2] > known)]
        found = None
        for n, row in enumerate(held):
            if row[0] > day:
                break
            found = n
        if found is None:
            return None
        row = held[found]
        until = held[found + 1][0] if found + 1 < len(held) else None
        return row[3], row[0], until, row[4]

    def state(self, stream: str, day: str, known: str | None) -> dict | None:
        """The state alone (or None)."""
        found = self.row(stream, day, known)
        return found[0] if found else None

    def _scope(self, stream: str, st: dict):
        data = self.index.streams[stream]
        # the state objects are this cache's own, so their parsed scope can be kept
        scope = data.scopes.get(id(st))
        if scope is None:
            scope = data.scopes[id(st)] = scope_of(st)
        return scope

    def lines_of(self, stream: str, day: str, known: str | None) -> tuple[str, ...]:
        """The HTS digits a group (or measure) names on `day` (or, when it has no state that
        day, at the end of what is known)."""
        found = self.row(stream, day, known) or self.row(stream, "9999-12-31", known)
        return self._scope(stream, found[0]).listed if found else ()

    def _measures(self, names, day: str, known: str | None, origin: str | None) -> list[Measure]:
        out = []
        for s in names:
            found = self.row(s, day, known)
            if found is None:
                continue
            st, since, _, ids = found
            if origin is not None and st.get("target") not in (origin, "all"):
                continue
            out.append(Measure(s, st, since, ids, title=self.titles.get(s),
                               scope=self._scope(s, st)))
        return out

    def measures(self, origin: str, day: str, known: str | None,
                 code: str | None = None) -> list[Measure]:
        """The tariffs on goods from `origin` with a state on `day` (those that may cover
        `code`, when given)."""
        if code is not None:
            maybe = self.index.candidates(code)
            return self._measures([s for s in self.tariffs if s in maybe], day, known, origin)
        return self._measures(self.tariffs, day, known, origin)

    def exempting(self, day: str, known: str | None, code: str | None = None) -> list[Measure]:
        """The exemptions with a state on `day` (those that may cover `code`, when given)."""
        if code is not None:
            maybe = self.index.candidates(code)
            return self._measures([s for s in self.exemptions if s in maybe], day, known, None)
        return self._measures(self.exemptions, day, known, None)

    def refundable(self, stream: str, known: str | None) -> bool:
        """Whether `stream`'s authority was invalidated, as known on `known`."""
        last = self.state(stream, "9999-12-31", known)
        return bool(last and last.get("legal_status") == "invalidated")

    def change_days(self, start: str | None, end: str | None, known: str | None,
                    streams=None) -> list[str]:
        """Every day a tariff or exemption (of `streams`) changes, within [start, end]."""
        days: set[str] = set()
        for s in streams if streams is not None else self.tariffs + self.exemptions:
            data = self.index.streams[s]
            if known is None:
                days.update(r[0] for r in data.rows)
            else:
                self.index.load_known(self.r)
                days.update(r[0] for r in data.known or () if r[1] <= known
                            and (r[2] is None or r[2] > known))
        if start:
            days = {d for d in days if d >= start} | {start}
        if end:
            days = {d for d in days if d <= end}
        return sorted(days)

    def group_names(self) -> list[str]:
        """The product groups' names (`product.smartphones` -> smartphones)."""
        return [g.removeprefix(GROUP_PREFIX) for g in self.groups]
