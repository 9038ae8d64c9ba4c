"""`first date where total tariff by A on B <op> N [from D] [known on K]`.

The all-goods total of `total tariff by A on B` can only change on a day one of A's tariff
measures starts an interval, so the total is computed (by the `total` form itself, with
the same knowledge semantics) on each such day from D on, and the first day it satisfies
the comparison is the answer, with the day it stops satisfying it.
"""
from __future__ import annotations

from timeline.errors import QueryError
from timeline.projections.reader import Reader
from timeline.query.planner import (Answer, Context, _date, _finish, _past, _rests_warning,
                                    answer, check_jurisdiction, horizon)
from timeline.query.products import _OPS  # the comparisons `first date where tariff` makes
from timeline.query.syntax import DateExpr, TotalFirstQuery, TotalQuery


def change_days(r: Reader, imposer: str, start: str | None, known: str | None) -> list[str]:
    """The days (on or after `start`) on which one of `imposer`'s tariffs starts an interval
    as known on `known`: the only days its total can change."""
    days = {start} if start else set()
    for s in r.tariff_streams(imposer):
        days.update(iv.valid_from for iv in r.history(s, start, None, known)
                    if not start or iv.valid_from >= start)
    return sorted(days)


def run_total_first(r: Reader, q: TotalFirstQuery, text: str, ctx: Context) -> Answer:
    """The first day the all-goods total by A on B satisfies `<op> N`, and until when."""
    if q.op not in _OPS:
        pos = q.value_pos or q.pos
        raise QueryError(f"a total is compared with =, !=, <, <=, > or >=, not {q.op!r}",
                         query=text, line=pos.line, column=pos.column)
    check_jurisdiction(r, q.imposer, q.imposer_pos, text)
    check_jurisdiction(r, q.target, q.target_pos, text)
    start = _date(q.start, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    days = change_days(r, q.imposer, start, known)
    found, until = None, None
    for day in days:
        total = answer(r, TotalQuery(q.imposer, q.target, DateExpr("iso", day, (), q.pos),
                                     q.known_on, q.pos), text, ctx)
        holds = _OPS[q.op](total.data["total"], q.value)
        if found is None and holds:
            found = (day, total)
        elif found is not None and not holds:
            until = day
            break
    h = horizon(r, known)
    results, rows, flags, warnings, ids, streams = [], [], [], [], [], []
    if found is not None:
        day, total = found
        d = total.data
        projected = _past(day, h)
        results.append({"imposer": q.imposer, "target": q.target, "date": day, "until": until,
                        "total": d["total"],
                        "components": [{"measure": c["measure"], "rate": c["rate"]}
                                       for c in d["components"]],
                        "projected": projected})
        rows.append([f"{q.imposer} on {q.target}", day, until, d["total"],
                     ", ".join(f"{c['measure']} {c['rate']}" for c in d["components"])])
        flags.append(projected)
        warnings += [_rests_warning(f"total tariff by {q.imposer} on {q.target}", day, h)] \
            if projected else []
        # what the sum rests on: its components (product measures are not in it)
        streams = [c["measure"] for c in d["components"]]
        ids = [i for c in d["components"] for i in c["events"]]
    plan = [f"the days from {start or 'the beginning'} on which a tariff of {q.imposer!r} "
            f"starts an interval: {len(days)}",
            f"the all-goods total by {q.imposer} on {q.target} on each (as `total tariff` "
            f"computes it); the first day it is {q.op} {q.value}, and the day it stops"]
    return _finish(Answer("total_first", {"query": text, "from": start, "known_on": known,
                                          "imposer": q.imposer, "target": q.target,
                                          "results": results},
                          ["total", "date", "until", "rate", "components"], rows, plan, ids,
                          streams, (found[0] if found else None, known)), h, warnings, flags)
