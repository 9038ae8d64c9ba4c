"""`learned [for X] between K1 and K2 [as of D]`: what the log learned in a span of knowledge
time, and how each new event changed what it said.

An event known on day k changed the log's answer from "as known on k - 1" to "as known on k".
With `as of D` the answer compares the state on D under both; without it, the whole history
of each touched measure, giving the span of valid time whose state changed. Events of one
measure that became known on the same day act together: their change is reported once per
event, marked as shared.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from timeline.errors import QueryError
from timeline.projections.reader import Reader, StateRow
from timeline.query.planner import (Answer, Context, _date, _finish, _past, _past_warning,
                                    _rests_warning, _summary, resolve_targets)
from timeline.query.syntax import LearnedQuery

# the fields a change line names; any other changed field is counted
KEY_FIELDS = ("rate", "status", "legal_status", "last_rate", "announced_rate", "threatened_rate")


def run_learned(r: Reader, q: LearnedQuery, text: str, ctx: Context) -> Answer:
    """The events that became known in (K1, K2] and what each changed."""
    after, through = _date(q.first, ctx), _date(q.second, ctx)
    if after > through:
        raise QueryError(f"learned between {after} and {through}: the first date must not be "
                         f"after the second", query=text, line=q.pos.line, column=q.pos.column,
                         hint=f"did you mean: between {through} and {after}?")
    as_of = _date(q.as_of, ctx, ctx.as_of)
    wanted = set(resolve_targets(r, q.target, text)) if q.target is not None else None
    log_h = r.horizon()
    h = min(through, log_h) if log_h else None
    warnings = _past_warning("between … and", through, log_h)
    if as_of:
        warnings += _past_warning("as of", as_of, h)
    changes: dict[tuple[str, str], dict] = {}  # (stream, known) -> change, computed once
    results: list[dict[str, Any]] = []
    rows: list[list] = []
    flags: list[bool] = []
    touched: list[str] = []
    for ev, streams in r.learned(after, through):
        if ev.type == "retitled":
            continue  # a new name for a measure: nothing the log says about it changed
        for s in streams:
            if wanted is not None and s not in wanted:
                continue
            key = (s, ev.known)
            if key not in changes:
                changes[key] = (_change_at(r, s, ev.known, as_of) if as_of
                                else _change_span(r, s, ev.known))
                changes[key]["events"] = []
            change = changes[key]
            change["events"].append(ev.id)
            # on D, the state rests on a change due after the horizon: projected
            projected = bool(as_of) and _past(change["after_from"], h)
            if projected:
                warnings.append(_rests_warning(s, change["after_from"], h))
            results.append({"known": ev.known, "measure": s, "id": ev.id, "type": ev.type,
                            "effective": ev.effective, "title": ev.title,
                            "source": ev.source.get("name"), "link": s != ev.stream,
                            "change": change, "projected": projected})
            rows.append([ev.known, s, ev.type, ev.effective, ev.title, change["text"]])
            flags.append(projected)
            touched.append(s)
    for res in results:
        shared = [i for i in res["change"]["events"] if i != res["id"]]
        res["shared_with"] = shared
    plan = [f"events known after {after} and on or before {through} (index on known), with "
            f"the measures they touch",
            f"for each measure and day k: the state {'on ' + as_of if as_of else 'history'} "
            f"as known on k - 1 day and on k; compare"]
    columns = ["known", "measure", "type", "effective", "title",
               "change on " + as_of if as_of else "change"]
    return _finish(Answer("learned", {"query": text, "after": after, "through": through,
                                      "as_of": as_of, "results": results},
                          columns, rows, plan, [x["id"] for x in results],
                          list(dict.fromkeys(touched)), (as_of, through)),
                   h, warnings, flags)


def _day_before(day: str) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()


def _change_at(r: Reader, stream: str, known: str, as_of: str) -> dict:
    """How the state on `as_of` changed when the log learned what it knew on `known`."""
    before = r.state(stream, as_of, _day_before(known))
    after = r.state(stream, as_of, known)
    return _describe(before, after)


def _change_span(r: Reader, stream: str, known: str) -> dict:
    """The span of valid time whose state changed when `known` was learned, and how."""
    before = r.history(stream, known_on=_day_before(known))
    after = r.history(stream, known_on=known)
    cuts = sorted({iv.valid_from for iv in before + after}
                  | {iv.valid_to for iv in before + after if iv.valid_to})
    differing = []
    for i, day in enumerate(cuts):
        a, b = _covering(before, day), _covering(after, day)
        if (a.state if a else None) != (b.state if b else None):
            differing.append((day, cuts[i + 1] if i + 1 < len(cuts) else None, a, b))
    if not differing:
        return _describe(None, None)
    start, _, a, b = differing[0]
    return _describe(a, b, {"from": start, "to": differing[-1][1]})


def _covering(ivs: list[StateRow], day: str) -> StateRow | None:
    for iv in ivs:
        if iv.valid_from <= day and (iv.valid_to is None or day < iv.valid_to):
            return iv
    return None


def _describe(before: StateRow | None, after: StateRow | None,
              span: dict | None = None) -> dict:
    """A change as JSON (fields before/after, the valid-time span) and as one line of text."""
    sa = before.state if before else {}
    sb = after.state if after else {}
    fields = [{"field": k, "before": sa.get(k), "after": sb.get(k)}
              for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    if not fields:
        text = "no change"
    elif not sa:
        text = f"appears: {_summary(sb)}"
    elif not sb:
        text = f"gone: was {_summary(sa)}"
    else:
        named = [f"{c['field']} {_v(c['before'])} → {_v(c['after'])}" for c in fields
                 if c["field"] in KEY_FIELDS]
        others = len(fields) - len(named)
        text = "; ".join(named + ([f"{others} other field{'s' if others > 1 else ''}"]
                                  if others else []))
    if span and fields:
        text = f"{span['from']} → {span['to'] or 'open'}: {text}"
    return {"fields": fields, "text": text, "span": span if fields else None,
            "after_from": after.valid_from if after else None}


def _v(value) -> str:
    return "–" if value is None else str(value)
