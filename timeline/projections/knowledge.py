"""Knowledge rows: a stream's intervals as they were known on each day, for `known on`.

A row `(stream, valid_from, known_from, known_to, state, event_ids)` says: from knowledge
day `known_from` until `known_to` (exclusive; NULL while it still holds) the stream had an
interval starting on `valid_from` with this state. The rows that hold on a day K are exactly
the intervals a `known on K` fold produces, each ending where the next begins, so `state of
X as of D known on K` is an indexed lookup instead of a fold of the stream's events.

A stream's rows change only on its epochs: the days its touching events became known and
the days their `known_between` ranges end (before that a `known on` fold shows the change as
uncertain). Each epoch re-folds from the earliest day its new knowledge touches and stops at
the first interval equal to the one already known, so an in-order stream costs one short
fold per epoch. Pure functions: the maintainer, the rebuild and the tests share them.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any, Callable, Iterable

from timeline.log.events import canonical_json
from timeline.log.vocabulary import SUPERSEDING_TYPES
from timeline.projections.fold import FoldEvent, fold, order_key

KNOWN_COLS = ("stream", "valid_from", "known_from", "known_to", "state", "event_ids")


def epoch_changes(evs: Iterable[FoldEvent]) -> dict[str, list[FoldEvent]]:
    """The events whose knowledge changes on each epoch day (known, or range end)."""
    out: dict[str, list[FoldEvent]] = {}
    for e in evs:
        out.setdefault(e.known, []).append(e)
        kb = e.payload.get("known_between")
        if kb and isinstance(kb, (list, tuple)) and len(kb) == 2 and str(kb[1]) > e.known:
            out.setdefault(str(kb[1]), []).append(e)
    return out


def known_through(evs: Iterable[FoldEvent]) -> str | None:
    """The stream's last epoch day: from it on, `known on` answers equal the current ones."""
    return max(epoch_changes(evs), default=None)


def known_rows(stream: str, evs: Iterable[FoldEvent]) -> list[tuple]:
    """Every knowledge row of `stream` from all the events touching it, in key order
    (valid_from, known_from); tuples in KNOWN_COLS order, state and ids as canonical JSON."""
    return known_fold(stream, evs)[0]


def known_fold(stream: str, evs: Iterable[FoldEvent], *, since: str | None = None,
               start_state: dict | None = None, window: dict[str, list] | None = None,
               excluded: Iterable[str] = (),
               changes: dict[str, list[FoldEvent]] | None = None,
               encode: Callable[[Any], str] = canonical_json) -> tuple[list[tuple], list[tuple]]:
    """`known_rows`, and the stream's intervals once everything is known, as (valid_from,
    state, state JSON, ids JSON) in order: the last epoch's fold is the plain fold (every
    event known, every range ended), so a rebuild need not fold the stream a second time.

    An append recomputes only a window: the epochs from `since` on, over the valid days of
    `window` (valid_from -> [known_from, state, state JSON, ids JSON], the rows holding
    just before `since`) and later. `start_state` is the state in force before the window,
    `evs` every event touching it (and every retraction and correction), `excluded` the ids
    withdrawn before `since`; rows come back for the window only.

    `changes` is `epoch_changes` of `evs` in `order_key` order when the caller has it
    already (each day's events in that order). `encode` writes states and ids as canonical
    JSON: `canonical_json`, or the rebuild's faster encoder for streams whose values it has
    checked that encoder writes the same.

    Epochs that only add events after every known interval are folded together
    (`_append_epochs`); the others re-fold from the earliest day they touch.
    """
    evs = sorted(evs, key=order_key)
    effs = [e.effective for e in evs]
    by_id = {e.id: e for e in evs}
    changes = epoch_changes(evs) if changes is None else changes
    current: dict[str, list] = dict(window or {})  # valid_from -> [known_from, state, JSONs]
    days: list[str] = sorted(current)  # valid_from of the current slice, ascending
    excluded = set(excluded)
    out: list[tuple] = []

    def same(day: str, state: dict, ids: list[str]) -> bool:
        row = current.get(day)
        return row is not None and row[3] == encode(ids) and row[2] == encode(state)

    ks = sorted(k for k in changes if since is None or k >= since)
    x = 0
    while x < len(ks):
        k = ks[x]
        touched = changes[k]
        if _simple(touched) and ((days and touched[0].effective > days[-1])
                                 or (not days and since is None)):
            # an epoch that only adds events after every interval known so far
            x = _append_epochs(stream, ks, x, changes, current, days,
                               current[days[-1]][1] if days else start_state, excluded, encode)
            continue
        x += 1
        newly = {i for e in touched if e.type in SUPERSEDING_TYPES and e.known == k
                 for i in e.payload.get("supersedes", ()) if i not in excluded}
        excluded |= newly
        dates = [e.effective for e in touched if e.type != "retraction"]
        dates += [by_id[i].effective for i in newly if i in by_id]
        if not dates:
            continue
        d0, last = min(dates), max(dates)
        lo = bisect_left(days, d0)
        start = current[days[lo - 1]][1] if lo else start_state
        later = [e for e in evs[bisect_left(effs, d0):] if e.known <= k]

        res = fold(stream, later, start_state=start, excluded=excluded, known_on=k,
                   converge=same, converge_after=last)
        hi = bisect_left(days, res.converged_at) if res.converged_at else len(days)
        fresh = {iv.valid_from: (iv.state, encode(iv.state), encode(iv.event_ids))
                 for iv in res.intervals}
        for day in days[lo:hi]:
            row, new = current[day], fresh.get(day)
            if new is not None and new[1] == row[2] and new[2] == row[3]:
                del fresh[day]  # the same interval goes on being known
                continue
            out.append((stream, day, row[0], k, row[2], row[3]))
            del current[day]
        for day, (state, sj, ij) in fresh.items():
            current[day] = [k, state, sj, ij]
        days[lo:hi] = [iv.valid_from for iv in res.intervals]
    out.extend((stream, day, row[0], None, row[2], row[3]) for day, row in current.items())
    out.sort(key=lambda r: (r[1], r[2]))
    return out, [(day, *current[day][1:]) for day in days]


# the payload keys that make the fold schedule a change (fold.apply_event, _open_uncertain)
_SCHEDULING = frozenset({"schedule", "affects_schedule", "effective_between"})


def _simple(touched: list[FoldEvent]) -> bool:
    """Whether an epoch's changes are plain events known on it: no retraction or correction
    (nothing withdrawn) and no day of knowledge given as a range."""
    for e in touched:
        if e.type in SUPERSEDING_TYPES or "known_between" in e.payload:
            return False
    return True


def _append_epochs(stream: str, ks: list[str], x: int, changes: dict[str, list[FoldEvent]],
                   current: dict[str, list], days: list[str], start: dict | None,
                   excluded: set[str], encode: Callable[[Any], str] = canonical_json) -> int:
    """Fold the epochs `ks[x:]` that each only add plain events after every interval known
    before them, as one fold resumed from `start` (the last known state); add their
    intervals to `current` / `days`; return the index of the next epoch to take.

    Epoch by epoch, such an epoch's fold leaves every known interval as it is and goes on
    from the last state with its own events, which lie after every earlier one. So the
    epochs' folds are the prefixes of one fold, cut where each next epoch's first day
    begins, as long as nothing is still scheduled at a cut: an epoch's fold would go on
    past it with the scheduled changes, and rows known until the next epoch would differ.
    The fold stops at the first such cut; the epoch before it gets its scheduled
    intervals by a fold of the schedule alone, and the next epoch is left to the caller.
    Every interval is known from the epoch whose events begin at or before it.
    """
    starts: list[str] = []  # each epoch's first day, ascending
    run: list[FoldEvent] = []
    top = ""
    end = x
    while end < len(ks):
        touched = changes[ks[end]]  # in order_key order: the first is the earliest
        d0 = touched[0].effective
        if end > x and (d0 <= top or not _simple(touched)):
            break
        starts.append(d0)
        if touched[-1].effective > top:
            top = touched[-1].effective
        run.extend(touched)
        end += 1
    scheduling = bool(start and start.get("scheduled"))
    if len(starts) > 1 and not scheduling:
        for e in run:
            if not _SCHEDULING.isdisjoint(e.payload):
                scheduling = True
                break
    prev: list = [start or {}]
    nxt = [1]  # the next cut (index into starts) the fold has not reached

    def cut(day: str, state: dict, ids: list[str]) -> bool:
        b = nxt[0]
        if b < len(starts) and day >= starts[b]:
            if prev[0].get("scheduled"):
                return True  # the epoch before this cut has a scheduled change beyond it
            while b < len(starts) and starts[b] <= day:
                b += 1
            nxt[0] = b
        prev[0] = state
        return False

    # without a schedule in the run nothing can be pending at a cut
    res = fold(stream, run, start_state=start, excluded=excluded, known_on=ks[end - 1],
               converge=cut if len(starts) > 1 and scheduling else None)
    ivs = res.intervals
    last = x + len(starts) - 1
    if res.converged_at is not None:
        last = x + nxt[0] - 1  # the epoch before the cut the fold stopped at
        ivs = ivs + fold(stream, [], start_state=prev[0]).intervals
    for iv in ivs:
        i = min(max(bisect_right(starts, iv.valid_from) - 1, 0), last - x)
        current[iv.valid_from] = [ks[x + i], iv.state, encode(iv.state), encode(iv.event_ids)]
        days.append(iv.valid_from)
    return last + 1


def window_bounds(new: Iterable[FoldEvent], later: Iterable[FoldEvent]) -> tuple[str, str] | None:
    """Where an append's new knowledge can change a stream's rows: (since, first valid day).

    `new` are the appended events touching the stream; `later` every stored event touching
    it (the new ones included) that became known on or after the new ones' first epoch, or
    carries `known_between`, or withdraws others. Rows before `since` in knowledge, or
    before the first valid day, stay as they are. None: a retraction, correction or known
    range is among the later knowledge, and the stream is recomputed whole instead.
    """
    since = min(epoch_changes(new), default=None)
    if since is None:
        return None
    firsts = []
    for e in later:
        kb = e.payload.get("known_between")
        if (e.known >= since and e.type in SUPERSEDING_TYPES) or (kb and str(kb[-1]) >= since):
            return None
        if e.known >= since and e.type != "retraction":
            firsts.append(e.effective)
    return (since, min(firsts)) if firsts else None


def holding_before(rows: Iterable[tuple], since: str) -> list[tuple]:
    """The rows (KNOWN_COLS) that held on the day before `since`."""
    return [r for r in rows if r[2] < since and (r[3] is None or r[3] >= since)]
