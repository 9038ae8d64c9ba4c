"""`explain <query>`: the events the answer rests on with their sources, the plan, the SQL."""
from __future__ import annotations

from timeline.log.vocabulary import SUPERSEDING_TYPES
from timeline.projections.fold import order_key, superseded_ids
from timeline.projections.reader import Reader
from timeline.query.planner import Answer, Context, answer


def explain(r: Reader, inner, text: str, ctx: Context, run=answer) -> Answer:
    """Run `inner` with `run` (the planner's `answer` by default), recording its SQL, and
    gather the events the answer rests on: the evidence first, then the plan, then the SQL
    (its statements only when `ctx.sql` asks; JSON always carries them)."""
    with r.recording() as rec:
        ans = run(r, inner, text, ctx)
    until, known = ans.bounds
    contributing = []
    for stream in _answered_streams(ans):
        evs = r.touching_events(stream, until=until, known_on=known)
        contributing += [(stream, ev) for ev in sorted(_contributing(evs, until, known),
                                                       key=order_key)]
    stored = r.events_by_id(ev.id for _, ev in contributing)
    quotes = {i: e.source for i, e in stored.items()}
    listed = [{
        "measure": stream, "id": ev.id, "type": ev.type, "effective": ev.effective,
        "known": ev.known, "title": ev.payload.get("title"), "superseded": False,
        "source": quotes.get(ev.id, {}).get("name"), "quote": quotes.get(ev.id, {}).get("quote"),
        "url": quotes.get(ev.id, {}).get("url"),
        **{k: ev.payload[k] for k in QUALIFIERS if ev.payload.get(k)},
    } for stream, ev in contributing]
    sql = [{"statement": s, "parameters": _params(p)} for s, p in rec.statements
           if s.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
    data = {"query": text, "plan": ans.plan, "sql": sql, "events": listed,
            "answer": ans.data}
    lines = ["EVIDENCE: the events the answer rests on (effective, known, measure, type)"]
    for e in listed:
        url = f" <{e['url']}>" if e.get("url") else ""
        lines.append(f"  {e['effective']}  known {e['known']}  {e['measure']}  {e['type']}"
                     f"{_qualified(e)}")
        lines.append(f"      {e['title']}")
        src = e["source"] or ""
        if e["quote"]:
            src += f': "{e["quote"]}"'
        lines.append(f"      source: {src}{url}")
    if not listed:
        lines.append("  (none)")
    lines += ["", "PLAN"] + [f"  - {p}" for p in ans.plan] + [""]
    if getattr(ctx, "sql", False):
        lines += ["SQL"] + [f"  {i + 1}. {s['statement']}\n     params: {s['parameters']}"
                            for i, s in enumerate(sql)]
    else:
        lines.append(f"SQL: {len(sql)} statement{'s' if len(sql) != 1 else ''} "
                     f"(`timeline query --sql` shows them)")
    return Answer("explain", data, ans.columns, ans.rows, ans.plan,
                  ans.event_ids, ans.streams, ans.bounds, "\n".join(lines))


def _answered_streams(ans: Answer) -> list[str]:
    """The measures the answer shows: those of its rows when it has a measure column (a
    `where` leaves the others out, a total's product measures give way to the goods' note),
    else every measure it read."""
    if "measure" not in ans.columns:
        return list(ans.streams)
    at = ans.columns.index("measure")
    shown = {row[at] for row in ans.rows}
    return [s for s in ans.streams if s in shown]


def _contributing(evs, until: str | None, known: str | None) -> list:
    """The events that made the answer: those in effect by `until` that no correction or
    retraction withdrew, and the later corrections and retractions that withdrew one of
    them (a withdrawn event, or a correction that changes only later days, did not)."""
    withdrawn = superseded_ids(evs, known)
    # a retitled event names the measure; it changes no state, so no answer rests on it
    by_then = [ev for ev in evs if (until is None or ev.effective <= until)
               and ev.type != "retitled"]
    ids = {ev.id for ev in by_then}
    later = [ev for ev in evs if until is not None and ev.effective > until
             and ev.type in SUPERSEDING_TYPES and ev.id not in withdrawn
             and ids & set(ev.payload.get("supersedes", ()))]
    return [ev for ev in by_then if ev.id not in withdrawn] + later


QUALIFIERS = ("effective_between", "known_between", "date_qualifier", "confidence")


def _qualified(e: dict) -> str:
    """How an event's dates or source are qualified, for its explain line."""
    marks = [f"{what} between {e[key][0]} and {e[key][1]}" for key, what in (
        ("effective_between", "effective"), ("known_between", "known")) if e.get(key)]
    marks += [e["confidence"]] if e.get("confidence") else []
    return "".join(f" [{m}]" for m in marks)


def _params(p):
    if isinstance(p, dict):
        return dict(p)
    return list(p) if isinstance(p, (list, tuple)) else p
