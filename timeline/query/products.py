"""Product-level tariffs: `tariff on …`, `history of tariff on …`, `first date where tariff
on …` and `products` (docs/products.md).

The measures' states are read as of the day asked and as known on the knowledge date, like
every other answer; `timeline.projections.scopes` turns them into the layers a good pays.
"""
from __future__ import annotations

import decimal
from typing import Any

from timeline.errors import QueryError
from timeline.projections.reader import Reader
from timeline.projections.scopes import (Evaluation, evaluate, hts_digits,
                                         hts_render)
from timeline.query.planner import (Answer, Context, _date, _finish, _past, _past_warning,
                                    _rests_warning, check_jurisdiction,
                                    horizon, matches, _record)
from timeline.query.scene import GROUP_PREFIX, Scene
from timeline.query.suggest import suggest
from timeline.query.syntax import (Product, ProductsQuery, TariffDiffQuery, TariffFirstQuery,
                                   TariffHistoryQuery, TariffQuery)

END_OF_TIME = "9999-12-31"
COLUMNS = ["measure", "rate", "applies", "why", "legal_status", "confidence"]


def _lines(scene: Scene, product: Product, day: str, known: str | None,
           text: str) -> tuple[list[str], dict]:
    """The HTS lines a product stands for, and what to say about it."""
    if product.kind == "hts":
        digits = hts_digits(product.value)
        if digits is None:  # the grammar refuses it first; kept for the API's own values
            raise QueryError(f"{product.value!r} is not an HTS code", query=text,
                             line=product.pos.line, column=product.pos.column)
        near = scene.index.groups_near(digits)
        groups = [g.removeprefix(GROUP_PREFIX) for g in scene.groups if g in near
                  and any(digits.startswith(p) or p.startswith(digits)
                          for p in scene.lines_of(g, day, known))]
        info: dict[str, Any] = {"kind": "hts", "hts": hts_render(digits), "groups": groups}
        mfn = _mfn_rates(scene, [GROUP_PREFIX + g for g in groups], day, known)
        if mfn:
            info["mfn_rates"] = mfn
        return [digits], info
    stream = GROUP_PREFIX + product.value
    if stream not in scene.groups:
        guess = suggest(product.value, scene.group_names())
        raise QueryError(f"unknown product group {product.value!r}", query=text,
                         line=product.pos.line, column=product.pos.column,
                         hint=f"did you mean '{guess}'?" if guess else
                         "list the groups with: products")
    state = scene.state(stream, day, known) or scene.state(stream, END_OF_TIME, known) or {}
    lines = list(scene.lines_of(stream, day, known))
    info = {"kind": "group", "group": product.value,
            "title": scene.titles.get(stream),
            "hts": [hts_render(d) for d in lines]}
    mfn = _mfn_rates(scene, [stream], day, known)
    if mfn:
        info["mfn_rates"] = mfn
    if not lines:
        note = state.get("coverage_note") or "the sources give no HTS codes for it"
        raise QueryError(f"product group {product.value!r} has no HTS codes in the log: {note}",
                         query=text, line=product.pos.line, column=product.pos.column,
                         hint="ask by code instead: tariff on hts <code> from …")
    return lines, info


def _mfn_rates(scene: Scene, groups: list[str], day: str, known: str | None) -> dict:
    """The general (MFN) rates the groups' sources give, by HTS digits."""
    out: dict[str, Any] = {}
    for g in groups:
        st = scene.state(g, day, known) or scene.state(g, END_OF_TIME, known) or {}
        for prefix, rate in (st.get("mfn_rates") or {}).items():
            digits = hts_digits(str(prefix))
            if digits:
                out[digits] = rate
    return out


def _mfn_for(code: str, rates: dict) -> Any:
    best = max((p for p in rates if code.startswith(p)), key=len, default=None)
    return rates[best] if best is not None else None


def assess(scene: Scene, lines: list[str], origin: str, day: str, known: str | None,
           shares: dict, postal: bool) -> list[Evaluation]:
    """Evaluate every line of a product on one day (a layer whose authority was invalidated
    by what is known on `known` is collected and refundable)."""
    out = []
    for code in lines:
        measures = scene.measures(origin, day, known, code)
        for m in measures:
            m.refundable = scene.refundable(m.stream, known)
        exemptions = scene.exempting(day, known, code)
        out.append(evaluate(code, measures, exemptions, shares=shares, postal=postal))
    return out


def _line_json(ev: Evaluation, info: dict) -> dict:
    out: dict[str, Any] = {"hts": hts_render(ev.code),
                           "layers": [l.as_dict() for l in ev.layers],
                           "total": ev.total, "complete": ev.complete,
                           "not_covering": ev.not_covering}
    if ev.unplaced:
        out["unplaced"] = ev.unplaced
    if ev.refundable:
        out["refundable"] = ev.refundable
        out["net_of_refunds"] = _sub(ev.total, ev.refundable)
    if ev.portions:
        out["portions"] = ev.portions
    if ev.alternatives:
        out["alternatives"] = ev.alternatives
    if ev.notes:
        out["notes"] = ev.notes
    mfn = _mfn_for(ev.code, info.get("mfn_rates") or {})
    if ev.total is not None and mfn is not None:
        out["mfn_rate"] = mfn
        out["total_with_mfn"] = _add(ev.total, mfn)
    return out


def _sub(a, b):
    d = decimal.Decimal(repr(a)) - decimal.Decimal(repr(b))
    return int(d) if d == d.to_integral_value() else float(d)


def _add(a, b):
    return _sub(a, -b)


def _shares(q) -> dict:
    return {name: pct for name, pct in q.shares}


def _applies(flag: bool | None) -> str:
    return "yes" if flag else ("not known" if flag is None else "no")


def _check_origin(r: Reader, scene: Scene, q, text: str) -> None:
    if q.origin not in scene.index.jurisdictions:
        check_jurisdiction(r, q.origin, q.origin_pos, text)


def run_tariff(r: Reader, q: TariffQuery, text: str, ctx: Context) -> Answer:
    """`tariff on <product> from <origin> as of D [known on K]`: the layers and their total."""
    day = _date(q.as_of, ctx, ctx.as_of, default_today=True)
    known = _date(q.known_on, ctx, ctx.known_on)
    scene = Scene(r)
    _check_origin(r, scene, q, text)
    lines, info = _lines(scene, q.product, day, known, text)
    evals = assess(scene, lines, q.origin, day, known, _shares(q), q.postal)
    h = horizon(r, known)
    results = [_line_json(ev, info) for ev in evals]
    info = {k: v for k, v in info.items() if k != "mfn_rates"}
    totals = {repr(res.get("total")) for res in results}
    total = results[0]["total"] if len(totals) == 1 else None
    rows: list[list[Any]] = []
    flags: list[bool] = []
    ids: list[str] = []
    notes: list[str] = []
    warnings = _past_warning("as of", day, h)
    many = len(evals) > 1
    for ev in evals:
        for layer in ev.layers:
            flag = _past(layer.since, h) and layer.applies is not False
            if flag:
                warnings.append(_rests_warning(layer.measure, layer.since or "", h))
            row = [layer.measure, layer.rate, _applies(layer.applies),
                   "; ".join([layer.why] + layer.notes), layer.legal_status or "",
                   layer.confidence or ""]
            rows.append(([hts_render(ev.code)] if many else []) + row)
            flags.append(flag or _past(day, h))
            if layer.applies is not False:
                ids += layer.events
        label = _total_label(ev)
        rows.append(([hts_render(ev.code)] if many else []) +
                    ["TOTAL", ev.total, "", label, "", ""])
        flags.append(_past(day, h) or any(_past(l.since, h) for l in ev.layers if l.applies))
        if not ev.complete:
            notes.append(f"{hts_render(ev.code)}: the total counts only the layers whose coverage "
                         f"is known; the layers marked 'not known' may add to it")
        if ev.unplaced:
            notes.append(f"{hts_render(ev.code)}: coverage not known for the measures in force "
                         f"whose HTS lines the sources do not give: {', '.join(ev.unplaced)}")
    if info.get("kind") == "hts" and not info.get("groups"):
        named = any(l.applies and l.why.startswith("covers ") for ev in evals
                    for l in ev.layers)
        if not named:
            notes.append(f"no product group in the log names {info['hts']}; the answer is "
                         f"the all-goods layers and what the measures' own HTS lines say")
    data = {"query": text, "product": info, "origin": q.origin, "as_of": day,
            "known_on": known, "total": total, "lines": results}
    if len(results) == 1:
        for key in ("refundable", "net_of_refunds", "portions", "alternatives", "mfn_rate",
                    "total_with_mfn", "complete", "unplaced"):
            if key in results[0]:
                data[key] = results[0][key]
    plan = [f"tariff measures and exemptions of 'us' in force on {day}"
            + (f" as known on {known}" if known else ""),
            f"HTS lines of {q.product.render()}: {', '.join(hts_render(c) for c in lines)}",
            "per line: coverage (longest HTS prefix), exemptions, stacking rules, content "
            "shares; sum what applies"]
    columns = (["hts"] if many else []) + COLUMNS
    streams = [l.measure for ev in evals for l in ev.layers if l.applies is not False]
    return _finish(Answer("tariff", data, columns, rows, plan, list(dict.fromkeys(ids)),
                          list(dict.fromkeys(streams)), (day, known),
                          summary_rows=0 if many else 1), h, warnings, flags, notes)


def _total_label(ev: Evaluation) -> str:
    parts = ["additional duties"]
    if ev.total is None and ev.portions:
        parts = ["by portion of value: " + "; ".join(
            f"{p['portion']} {p['rate']}%" for p in ev.portions)]
    if not ev.complete:
        parts.append("at least: some coverage not known")
    if ev.refundable:
        parts.append(f"of which {ev.refundable}% refundable (net {_sub(ev.total, ev.refundable)}%)")
    for alt in ev.alternatives:
        if "exempt_by" in alt:
            parts.append(f"{alt['total']}% if the disputed report that {alt['exempt_by']} "
                         f"covers this code ({alt['source']}) is right")
        else:
            parts.append(f"{alt['total']}% if the disputed {alt['measure']} rate "
                         f"{alt['rate']}% ({alt['source']}) applied")
    parts += ev.notes
    return "; ".join(parts)


def _summary(ev: Evaluation) -> tuple:
    return (ev.total, ev.complete, tuple((l.measure, l.rate, l.applies) for l in ev.layers
                                         if l.applies is not False))


def tariff_history(scene: Scene, lines: list[str], origin: str, start: str | None,
                   end: str | None, known: str | None, shares: dict,
                   postal: bool) -> list[dict]:
    """One entry per change of a product's layers or total, per line."""
    out: list[dict] = []
    last: dict[str, tuple] = {}
    prev: dict[str, Evaluation] = {}
    for day in scene.change_days(start, end, known):
        for ev in assess(scene, lines, origin, day, known, shares, postal):
            key = _summary(ev)
            if last.get(ev.code) == key:
                continue
            before = prev.get(ev.code)
            changed = _changed_layers(before, ev)
            last[ev.code], prev[ev.code] = key, ev
            out.append({"hts": hts_render(ev.code), "from": day, "total": ev.total,
                        "complete": ev.complete, "changed": changed,
                        "layers": [l.as_dict() for l in ev.layers if l.applies is not False],
                        **({"refundable": ev.refundable} if ev.refundable else {})})
    out.sort(key=lambda o: (lines.index(_digits_of(o["hts"])), o["from"]))
    for i, item in enumerate(out):
        nxt = out[i + 1]["from"] if i + 1 < len(out) and out[i + 1]["hts"] == item["hts"] \
            else None
        item["until"] = nxt
    return out


def _digits_of(hts: str) -> str:
    return hts.replace(".", "")


def _changed_layers(before: Evaluation | None, after: Evaluation) -> list[str]:
    old = {l.measure: (l.rate, l.applies) for l in before.layers} if before else {}
    new = {l.measure: (l.rate, l.applies) for l in after.layers}
    out = []
    for m in sorted(set(old) | set(new)):
        a, b = old.get(m, (None, False)), new.get(m, (None, False))
        if (a[1] is not False or b[1] is not False) and a != b:
            out.append(f"{m}: {_fmt(a)} -> {_fmt(b)}")
    return out


def _fmt(pair) -> str:
    rate, applies = pair
    if applies is None:
        return "not known"
    return f"{rate}%" if applies else "-"


def run_tariff_history(r: Reader, q: TariffHistoryQuery, text: str, ctx: Context) -> Answer:
    """`history of tariff on <product> from <origin>`: one row per change of the total."""
    start, end = _date(q.start, ctx), _date(q.end, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    scene = Scene(r)
    _check_origin(r, scene, q, text)
    lines, info = _lines(scene, q.product, end or start or ctx.today.isoformat(), known, text)
    items = tariff_history(scene, lines, q.origin, start, end, known, _shares(q), q.postal)
    h = horizon(r, known)
    many = len(lines) > 1
    rows, flags, warnings = [], [], []
    for it in items:
        flag = _past(it["from"], h)
        if flag:
            warnings.append(f"{it['hts']}: the total from {it['from']} rests on a change due "
                            f"after the knowledge horizon {h} (projected)")
        it["projected"] = flag
        rows.append(([it["hts"]] if many else []) +
                    [it["from"], it["until"], it["total"], "; ".join(it["changed"]) or "",
                     "" if it["complete"] else "some coverage not known"])
        flags.append(flag)
    data = {"query": text, "product": info, "origin": q.origin, "from": start, "to": end,
            "known_on": known, "changes": items}
    plan = [f"every day a US tariff or exemption changes from {start or 'the beginning'} "
            f"to {end or 'the end'}", "evaluate the product on each; keep the days its "
            "layers or total change"]
    columns = (["hts"] if many else []) + ["from", "until", "total", "changed", "note"]
    return _finish(Answer("tariff_history", data, columns, rows, plan, [],
                          scene.tariffs, (end, known)), h, warnings, flags)


_OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def run_tariff_first(r: Reader, q: TariffFirstQuery, text: str, ctx: Context) -> Answer:
    """`first date where tariff on <product> from <origin> >= N`: per line, the first day."""
    if q.op not in _OPS:
        pos = q.value_pos or q.pos
        raise QueryError(f"a tariff is compared with =, !=, <, <=, > or >=, not {q.op!r}",
                         query=text, line=pos.line, column=pos.column)
    start = _date(q.start, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    scene = Scene(r)
    _check_origin(r, scene, q, text)
    lines, info = _lines(scene, q.product, start or ctx.today.isoformat(), known, text)
    items = tariff_history(scene, lines, q.origin, start, None, known, _shares(q), q.postal)
    h = horizon(r, known)
    results, rows, flags, warnings = [], [], [], []
    seen: set[str] = set()
    for it in items:
        if it["hts"] in seen or it["total"] is None or not _OPS[q.op](it["total"], q.value):
            continue
        seen.add(it["hts"])
        flag = _past(it["from"], h)
        results.append({**it, "date": it["from"], "projected": flag})
        rows.append([it["hts"], it["from"], it["until"], it["total"],
                     "; ".join(it["changed"])])
        flags.append(flag)
        if flag:
            warnings.append(f"{it['hts']}: {it['from']} rests on a change due after the "
                            f"knowledge horizon {h} (projected)")
    data = {"query": text, "product": info, "origin": q.origin, "from": start,
            "known_on": known, "results": results}
    plan = [f"history of the product's total from {start or 'the beginning'}; the first day "
            f"it is {q.op} {q.value}"]
    return _finish(Answer("tariff_first", data, ["hts", "date", "until", "total", "changed"],
                          rows, plan, [], scene.tariffs, (None, known)), h, warnings, flags)


def run_tariff_diff(r: Reader, q: TariffDiffQuery, text: str, ctx: Context) -> Answer:
    """`diff tariff on <product> from <origin> between D1 and D2`: per line, what changed."""
    first, second = _date(q.first, ctx), _date(q.second, ctx)
    known = _date(q.known_on, ctx, ctx.known_on)
    scene = Scene(r)
    _check_origin(r, scene, q, text)
    lines, info = _lines(scene, q.product, second, known, text)
    before = assess(scene, lines, q.origin, first, known, _shares(q), q.postal)
    after = assess(scene, lines, q.origin, second, known, _shares(q), q.postal)
    h = horizon(r, known)
    results, rows, flags = [], [], []
    for a, b in zip(before, after):
        changed = _changed_layers(a, b)
        results.append({"hts": hts_render(b.code), "before": a.total, "after": b.total,
                        "changed": changed, "complete": a.complete and b.complete})
        rows.append([hts_render(b.code), a.total, b.total, "; ".join(changed) or "no change"])
        flags.append(_past(second, h) or _past(first, h))
    warnings = _past_warning("between … and", max(first, second), h)
    data = {"query": text, "product": {k: v for k, v in info.items() if k != "mfn_rates"},
            "origin": q.origin, "first": first, "second": second, "known_on": known,
            "results": results}
    plan = [f"the product on {first} and on {second}; compare its layers and totals"]
    return _finish(Answer("tariff_diff", data, ["hts", "before", "after", "changed"], rows,
                          plan, [], scene.tariffs, (max(first, second), known)), h, warnings,
                   flags)


def run_products(r: Reader, q: ProductsQuery, text: str, ctx: Context) -> Answer:
    """`products [where …]`: the product groups, their HTS codes and what they cover."""
    scene = Scene(r)
    items = []
    for g in scene.groups:
        st = scene.state(g, END_OF_TIME, None) or {}
        rec = {"product": g.removeprefix(GROUP_PREFIX), "name": g.removeprefix(GROUP_PREFIX),
               "title": scene.titles.get(g), "hts": ", ".join(map(str, st.get("hts") or ())),
               "scope": st.get("scope"), "confidence": st.get("confidence"),
               "mfn_rates": st.get("mfn_rates"), "coverage_note": st.get("coverage_note")}
        if q.conditions:
            _check_product_fields(q, text)
            if not matches(q.conditions, _record(g, rec)):
                continue
        items.append(rec)
    if q.order is not None:
        key = q.order.field.lower()
        items.sort(key=lambda it: (it.get(key) is None, str(it.get(key) or "")),
                   reverse=q.order.descending)
    if q.limit is not None:
        items = items[:q.limit]
    rows = [[it["product"], it["title"], it["hts"], it["confidence"] or ""] for it in items]
    plan = ["the product groups of the log (streams of kind 'product'), their HTS codes"]
    return _finish(Answer("products", {"query": text, "products": items},
                          ["product", "title", "hts", "confidence"], rows, plan, [],
                          scene.groups, (None, None)), horizon(r, None), [], [])


PRODUCT_FIELDS = ("product", "name", "title", "hts", "scope", "confidence", "coverage_note")


def _check_product_fields(q: ProductsQuery, text: str) -> None:
    from timeline.query.syntax import leaves

    for c in leaves(q.conditions):
        if c.field.lower() not in PRODUCT_FIELDS:
            guess = suggest(c.field.lower(), PRODUCT_FIELDS)
            raise QueryError(f"unknown field {c.field!r}: products have "
                             f"{', '.join(PRODUCT_FIELDS)}", query=text, line=c.pos.line,
                             column=c.pos.column,
                             hint=f"did you mean '{guess}'?" if guess else None)


def other_goods(r: Reader, imposer: str, origin: str, day: str, known: str | None,
                total: Any) -> list[dict]:
    """The product groups whose goods from `origin` pay something other than `total` (the
    all-goods duty) on `day`: what `total tariff by …` lists after its TOTAL."""
    scene = Scene(r, imposer)
    if not scene.groups:
        return []
    out = []
    for g in scene.groups:
        st = scene.state(g, day, known) or scene.state(g, END_OF_TIME, known) or {}
        codes = [d for d in (hts_digits(str(p)) for p in st.get("hts") or ()) if d]
        if not codes:
            continue
        ev = assess(scene, codes[:1], origin, day, known, {}, False)[0]
        if ev.total == total and ev.complete:
            continue
        out.append({"group": g.removeprefix(GROUP_PREFIX), "hts": hts_render(codes[0]),
                    "total": ev.total, "complete": ev.complete})
    return out


HANDLERS = {TariffQuery: run_tariff, TariffHistoryQuery: run_tariff_history,
            TariffFirstQuery: run_tariff_first, TariffDiffQuery: run_tariff_diff,
            ProductsQuery: run_products}
