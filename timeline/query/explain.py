"""`explain <query>`: the plan, the SQL it ran, and every contributing event with its source."""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.engine import Connection

from timeline.projections.fold import order_key, superseded_ids
from timeline.query.planner import Answer, Context, SqlRecorder, run
from timeline.projections.maintain import touching_events
from timeline.log.schema import events

CHUNK = 500


def explain(conn: Connection, inner, text: str, ctx: Context) -> Answer:
    """Run `inner`, recording its SQL, and gather the events behind its answer."""
    with SqlRecorder(conn) as rec:
        answer = run(conn, inner, text, ctx)
    until, known = answer.bounds
    contributing = []
    for stream in answer.streams:
        evs = touching_events(conn, stream, until=until, known_on=known)
        withdrawn = superseded_ids(evs, known)
        for ev in sorted(evs, key=order_key):
            if until is not None and ev.effective > until and ev.type not in (
                    "retraction", "correction"):
                continue
            contributing.append((stream, ev, ev.id in withdrawn))
    quotes = _sources(conn, [ev.id for _, ev, _ in contributing])
    listed = [{
        "measure": stream, "id": ev.id, "type": ev.type, "effective": ev.effective,
        "known": ev.known, "title": ev.payload.get("title"), "superseded": gone,
        "source": quotes.get(ev.id, {}).get("name"), "quote": quotes.get(ev.id, {}).get("quote"),
        "url": quotes.get(ev.id, {}).get("url"),
    } for stream, ev, gone in contributing]
    sql = [{"statement": s, "parameters": _params(p)} for s, p in rec.statements
           if s.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
    data = {"query": text, "plan": answer.plan, "sql": sql, "events": listed,
            "answer": answer.data}
    lines = ["PLAN"] + [f"  - {p}" for p in answer.plan] + ["", "SQL"]
    lines += [f"  {i + 1}. {s['statement']}\n     params: {s['parameters']}"
              for i, s in enumerate(sql)]
    lines += ["", "CONTRIBUTING EVENTS (effective, known, measure, type)"]
    for e in listed:
        mark = " [superseded]" if e["superseded"] else ""
        lines.append(f"  {e['effective']}  known {e['known']}  {e['measure']}  {e['type']}{mark}")
        lines.append(f"      {e['title']}")
        src = e["source"] or ""
        if e["quote"]:
            src += f': "{e["quote"]}"'
        lines.append(f"      source: {src}")
    if not listed:
        lines.append("  (none)")
    return Answer("explain", data, answer.columns, answer.rows, answer.plan,
                  answer.event_ids, answer.streams, answer.bounds, "\n".join(lines))


def _params(p):
    if isinstance(p, dict):
        return {k: v for k, v in p.items()}
    return list(p) if isinstance(p, (list, tuple)) else p


def _sources(conn: Connection, ids: list[str]) -> dict[str, dict]:
    out = {}
    for i in range(0, len(ids), CHUNK):
        for r in conn.execute(select(events.c.id, events.c.source)
                              .where(events.c.id.in_(ids[i:i + CHUNK]))):
            out[r.id] = json.loads(r.source)
    return out
