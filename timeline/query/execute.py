"""Running any parsed query, `explain` included: the query layer's one entry point."""
from __future__ import annotations

from timeline.projections.reader import Reader
from timeline.query.planner import Answer, Context, answer
from timeline.query.syntax import (ExplainQuery, LearnedQuery, ProductsQuery, TariffDiffQuery,
                                   TariffFirstQuery, TariffHistoryQuery, TariffQuery,
                                   TotalFirstQuery, TotalQuery)

_PRODUCT_FORMS = (TariffQuery, TariffHistoryQuery, TariffFirstQuery, TariffDiffQuery,
                  ProductsQuery)

__all__ = ["run", "Answer", "Context"]


def run(r: Reader, query, text: str, ctx: Context | None = None) -> Answer:
    """Plan and run a parsed query (any form) over one Reader snapshot."""
    ctx = ctx or Context()
    if isinstance(query, ExplainQuery):
        from timeline.query.explain import explain  # only explain queries load it

        return explain(r, query.query, text, ctx, run=_answer)
    return _answer(r, query, text, ctx)


def _answer(r: Reader, query, text: str, ctx: Context) -> Answer:
    if isinstance(query, LearnedQuery):
        from timeline.query.learned import run_learned  # only learned queries load it

        return run_learned(r, query, text, ctx)
    if isinstance(query, TotalFirstQuery):
        from timeline.query.total_first import run_total_first  # only this form loads it

        return _with_text(run_total_first, r, query, text, ctx)
    if isinstance(query, _PRODUCT_FORMS):
        from timeline.query.products import HANDLERS  # only product queries load it

        return _with_text(HANDLERS[type(query)], r, query, text, ctx)
    ans = answer(r, query, text, ctx)
    if isinstance(query, TotalQuery) and not query.conditions and ctx.goods:
        _goods(r, ans)
    elif isinstance(query, TotalQuery) and not ans.data["components"]:
        _filtered_to_nothing(r, query, ans)
    return ans


def _filtered_to_nothing(r: Reader, query: TotalQuery, ans: Answer) -> None:
    """A `where` that leaves no all-goods tariff sums nothing: TOTAL 0 is not what any good
    paid, and a product is asked with `tariff on` (issue 22)."""
    from timeline.query.scene import Scene
    from timeline.query.syntax import leaves

    words = [str(c.value).lower() for c in leaves(query.conditions) if isinstance(c.value, str)]
    groups = [g for g in Scene(r, query.imposer).group_names()
              if any(w and (w in g or g.rstrip("s") in w) for w in words)]
    hint = (f"; for a product ask: tariff on {groups[0]} from {query.target}" if groups else
            f"; for a product ask: tariff on <group or hts code> from {query.target} "
            f"(`products` lists the groups)")
    ans.data["warnings"].append(
        f"the where filter leaves no all-goods tariff: TOTAL 0 sums nothing and is not what "
        f"any good paid{hint}")


def _goods(r: Reader, ans: Answer) -> None:
    """A total is the duty on goods no product measure covers: say so, and list the product
    groups that pay something else that day (docs/products.md)."""
    from timeline.query.products import other_goods

    d = ans.data
    goods = other_goods(r, d["imposer"], d["target"], d["as_of"], d["known_on"], d["total"])
    if not goods:
        return
    d["other_goods"] = goods
    # the product measures are the groups' answers now: the table keeps the all-goods rows,
    # the JSON keeps `also_applies` as it was
    whole = {c["measure"] for c in d["components"]}
    product = {a["measure"] for a in d["also_applies"]}
    ans.rows = [row for row in ans.rows if row[0] not in product]
    d["notes"] = [n for n in d.get("notes", []) if n.split(" ", 1)[0] not in product]
    shown = "; ".join(f"{g['group']} {_pct(g['total'])}{'' if g['complete'] else '+'}"
                      for g in goods)
    d["notes"].append(
        f"TOTAL is the duty on goods no product measure or exemption covers ("
        f"{', '.join(sorted(whole)) or 'none'}); these product groups pay something else that "
        f"day ('+': some layer's coverage not known; `tariff on <group> from {d['target']}` "
        f"gives the layers): {shown}")


def _pct(v) -> str:
    return "–" if v is None else f"{v}%"


def _with_text(handler, r: Reader, query, text: str, ctx: Context) -> Answer:
    from timeline.errors import QueryError

    try:
        return handler(r, query, text, ctx)
    except QueryError as exc:
        if exc.query:
            raise
        # date resolution knows the position but not the text: add it so the caret shows
        raise QueryError(exc.message, query=text, line=exc.line, column=exc.column,
                         expected=exc.expected, hint=exc.hint) from None
