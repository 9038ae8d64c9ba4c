"""The handlers: one per page and per JSON endpoint, each `handler(server, request)`."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from timeline.errors import QueryError, TimelineError, describe
from timeline.surfaces.completion import partial_word, suggest
from timeline.surfaces.output import render, to_csv
from timeline.surfaces.serve import params, reads
from timeline.surfaces.serve.replies import error_json, status_of

COMPLETIONS = 40  # suggestions served per request


def _fail(srv, exc: TimelineError, title: str, code: int | None = None, **values: Any):
    code = code or status_of(exc)
    return srv.html("error.html", code, title=title, message=describe(exc), status=code,
                    **values)


def home(srv, request):
    """The briefing for ?date= (default today) as known on ?known=."""
    p = request.query_params
    try:
        day = params.date(p, "date", srv.today()) or srv.today().isoformat()
        known = params.date(p, "known", srv.today())
        facts = srv.cache.facts()
        brief = reads.home(srv.tl, day, known)
    except TimelineError as exc:
        return _fail(srv, exc, "Briefing")
    return srv.html("home.html", title=f"Briefing for {day}", day=day, known=known,
                    facts=facts, **brief)


def ask(srv, request):
    """A query (?q=), its answer as a table, horizon, warnings, explain on demand."""
    p = request.query_params
    values: dict[str, Any] = {**params.echo(p, ("q", "as_of", "known")),
                              "explain": params.flag(p, "explain")}
    try:
        facts = srv.cache.facts()
        values.update(q=params.text(p, "q"), as_of=params.date(p, "as_of", srv.today()),
                      known=params.date(p, "known", srv.today()),
                      explain=params.flag(p, "explain"))
        result = reads.ask(srv.tl, values["q"], as_of=values["as_of"], known=values["known"],
                           explain=values["explain"], today=srv.today()) if values["q"] \
            else None
    except TimelineError as exc:
        return _fail(srv, exc, "Ask", page="ask", facts=srv.cache.facts(), **values)
    links = {}
    if result is not None:
        extra = {k: v for k, v in (("as_of", values["as_of"]), ("known", values["known"]))
                 if v}
        links = {fmt: "/api/query?" + urlencode({"q": values["q"], **extra,
                                                 **({"format": fmt} if fmt != "json" else {})})
                 for fmt in ("json", "csv")}
        links["explain"] = "/ask?" + urlencode({"q": values["q"], **extra, "explain": "1"})
    data = result.data if result else {}
    if result is not None and result.kind == "explain":
        data = data.get("answer", data)
    return srv.html("ask.html", title="Ask", page="ask", facts=facts, result=result,
                    data=data, links=links, max_rows=srv.max_rows, **values)


def product(srv, request):
    """A good's layers on ?on= as known on ?known=, with its stacked chart."""
    p = request.query_params
    values: dict[str, Any] = params.echo(p, ("p", "on", "known"))
    facts = srv.cache.facts()
    try:
        values.update(p=params.pattern(p, "p", params.PRODUCT, "an HTS code or a product "
                                       "group's name"),
                      on=params.date(p, "on", srv.today()) or srv.today().isoformat(),
                      known=params.date(p, "known", srv.today()))
        look = reads.product(srv.tl, facts, values["p"], values["on"], values["known"]) \
            if values["p"] else None
    except TimelineError as exc:
        return _fail(srv, exc, "Product", page="product", facts=facts, **values)
    return srv.html("product.html", title=f"Product {values['p']}".strip(), page="product",
                    facts=facts, look=look, **values)


def measure(srv, request):
    """One measure (?id=): its history as known on ?known=, chart, events and sources."""
    p = request.query_params
    facts = srv.cache.facts()
    values: dict[str, Any] = params.echo(p, ("id", "known"))
    try:
        values.update(id=params.pattern(p, "id", params.MEASURE_ID, "a measure id"),
                      known=params.date(p, "known", srv.today()))
        if not values["id"]:
            return srv.html("measures.html", title="Measures", page="measure", facts=facts)
        look = reads.measure(srv.tl, facts, values["id"], values["known"], srv.max_rows)
    except TimelineError as exc:  # a measure the log does not hold: no such page
        unknown = isinstance(exc, QueryError) and exc.message.startswith("unknown measure")
        return _fail(srv, exc, "Measure", 404 if unknown else None, page="measure",
                     facts=facts, **values)
    return srv.html("measure.html", title=values["id"], page="measure", facts=facts,
                    look=look, title_of=facts.catalogue.titles.get(values["id"], ""),
                    **values)


def events(srv, request):
    """The events, filtered by ?type=, ?stream= (a glob) and known between ?from= and ?to=."""
    p = request.query_params
    facts = srv.cache.facts()
    values: dict[str, Any] = {**params.echo(p, ("type", "stream", "known_from", "known_to")),
                              "query": ""}
    try:
        kind = params.text(p, "type").lower()
        if kind and kind not in facts.event_types:
            raise params.BadParam("type", f"{kind[:40]!r} is not an event type (one of "
                                          f"{', '.join(facts.event_types)})")
        values.update(type=kind, stream=params.pattern(p, "stream", params.STREAM_GLOB,
                                                       "a measure id or glob"),
                      known_from=params.date(p, "known_from", srv.today()),
                      known_to=params.date(p, "known_to", srv.today()))
        values["query"] = reads.events_query(values["type"], values["stream"],
                                             values["known_from"], values["known_to"],
                                             srv.max_rows)
        rows = srv.tl.query(values["query"], today=srv.today()).data["results"]
    except TimelineError as exc:
        return _fail(srv, exc, "Events", page="events", facts=facts, **values)
    return srv.html("events.html", title="Events", page="events", facts=facts,
                    rows=rows[:srv.max_rows], more=len(rows) > srv.max_rows,
                    shown_query=values["query"].rpartition(" limit ")[0], **values)


def api_query(srv, request):
    """/api/query?q=: exactly what `timeline query --format json` (or csv) prints."""
    p = request.query_params
    fmt = p.get("format", "json")
    if fmt not in ("json", "csv"):
        return error_json(params.BadParam("format", f"{fmt[:20]!r} is not json or csv"))
    try:
        q = params.text(p, "q")
        if not q:
            raise params.BadParam("q", "a query is needed, e.g. ?q=state of us.tariff.* as "
                                       "of 2025-05-14")
        result = reads.ask(srv.tl, q, as_of=params.date(p, "as_of", srv.today()),
                           known=params.date(p, "known", srv.today()), explain=False,
                           today=srv.today())
        if len(result.answer.rows) > srv.max_rows:
            raise params.BadParam("q", f"the answer has {len(result.answer.rows):,} rows, more "
                                       f"than this server's limit of {srv.max_rows:,} "
                                       f"(--max-rows); narrow the query or add a limit")
    except TimelineError as exc:
        return error_json(exc)
    if fmt == "csv":
        return Response(to_csv(result.answer.columns, result.answer.rows),
                        media_type="text/csv; charset=utf-8")
    out = render(result.answer, "json")
    return Response(out if out.endswith("\n") else out + "\n", media_type="application/json")


def api_complete(srv, request):
    """/api/complete?q=: the REPL's completions for the text before the cursor."""
    try:
        text = params.text(request.query_params, "q")
        facts = srv.cache.facts()
    except TimelineError as exc:
        return error_json(exc)
    raw = request.query_params.get("q", "")[:params.MAX_PARAM]
    word = partial_word(raw)
    words = suggest(raw, facts.catalogue)[:COMPLETIONS] if text or raw == "" else []
    body = {"word": word, "suggestions": words,
            "titles": {w: facts.catalogue.titles[w] for w in words
                       if w in facts.catalogue.titles}}
    return Response(json.dumps(body, ensure_ascii=False) + "\n",
                    media_type="application/json")


def sql_page(srv, request):
    """/sql?q=: one read-only SELECT over the documented views (only with --allow-sql)."""
    q = ""
    try:
        q = params.text(request.query_params, "q")
        columns, rows = srv.tl.sql(q, max_rows=srv.max_rows + 1) if q else ([], [])
    except TimelineError as exc:
        return _fail(srv, exc, "SQL", page="sql", q=q, facts=srv.cache.facts())
    return srv.html("sql.html", title="SQL", page="sql", q=q, columns=columns,
                    rows=rows[:srv.max_rows], more=len(rows) > srv.max_rows)


def api_sql(srv, request):
    """/api/sql?q=: the columns and rows of one read-only SELECT, as JSON."""
    try:
        q = params.text(request.query_params, "q")
        if not q:
            raise params.BadParam("q", "a SELECT statement is needed")
        columns, rows = srv.tl.sql(q, max_rows=srv.max_rows + 1)
    except TimelineError as exc:
        return error_json(exc)
    body = {"columns": columns, "rows": [list(r) for r in rows[:srv.max_rows]],
            "truncated": len(rows) > srv.max_rows}
    return Response(json.dumps(body, ensure_ascii=False, default=str) + "\n",
                    media_type="application/json")


ROUTES = [("/", home), ("/ask", ask), ("/product", product), ("/measure", measure),
          ("/events", events), ("/api/query", api_query), ("/api/complete", api_complete)]
SQL_ROUTES = [("/sql", sql_page), ("/api/sql", api_sql)]
