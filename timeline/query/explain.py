"""`explain <query>`: the plan, the SQL it ran, and every contributing event with its source."""
from __future__ import annotations

from timeline.projections.fold import order_key, superseded_ids
from timeline.projections.reader import Reader
from timeline.query.planner import Answer, Context, answer


def explain(r: Reader, inner, text: str, ctx: Context, run=answer) -> Answer:
    """Run `inner` with `run` (the planner's `answer` by default), recording its SQL, and
    gather the events behind its answer."""
    with r.recording() as rec:
        ans = run(r, inner, text, ctx)
    until, known = ans.bounds
    contributing = []
    for stream in ans.streams:
        evs = r.touching_events(stream, until=until, known_on=known)
        withdrawn = superseded_ids(evs, known)
        for ev in sorted(evs, key=order_key):
            if until is not None and ev.effective > until and ev.type not in (
                    "retraction", "correction"):
                continue
            contributing.append((stream, ev, ev.id in withdrawn))
    stored = r.events_by_id(ev.id for _, ev, _ in contributing)
    quotes = {i: e.source for i, e in stored.items()}
    listed = [{
        "measure": stream, "id": ev.id, "type": ev.type, "effective": ev.effective,
        "known": ev.known, "title": ev.payload.get("title"), "superseded": gone,
        "source": quotes.get(ev.id, {}).get("name"), "quote": quotes.get(ev.id, {}).get("quote"),
        "url": quotes.get(ev.id, {}).get("url"),
        **{k: ev.payload[k] for k in QUALIFIERS if ev.payload.get(k)},
    } for stream, ev, gone in contributing]
    sql = [{"statement": s, "parameters": _params(p)} for s, p in rec.statements
           if s.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
    data = {"query": text, "plan": ans.plan, "sql": sql, "events": listed,
            "answer": ans.data}
    lines = ["PLAN"] + [f"  - {p}" for p in ans.plan] + ["", "SQL"]
    lines += [f"  {i + 1}. {s['statement']}\n     params: {s['parameters']}"
              for i, s in enumerate(sql)]
    lines += ["", "CONTRIBUTING EVENTS (effective, known, measure, type)"]
    for e in listed:
        mark = (" [superseded]" if e["superseded"] else "") + _qualified(e)
        lines.append(f"  {e['effective']}  known {e['known']}  {e['measure']}  {e['type']}{mark}")
        lines.append(f"      {e['title']}")
        src = e["source"] or ""
        if e["quote"]:
            src += f': "{e["quote"]}"'
        lines.append(f"      source: {src}")
    if not listed:
        lines.append("  (none)")
    return Answer("explain", data, ans.columns, ans.rows, ans.plan,
                  ans.event_ids, ans.streams, ans.bounds, "\n".join(lines))


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
