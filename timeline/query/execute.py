"""Running any parsed query, `explain` included: the query layer's one entry point."""
from __future__ import annotations

from timeline.projections.reader import Reader
from timeline.query.planner import Answer, Context, answer
from timeline.query.syntax import (ExplainQuery, LearnedQuery, ProductsQuery, TariffFirstQuery,
                                   TariffHistoryQuery, TariffQuery)

_PRODUCT_FORMS = (TariffQuery, TariffHistoryQuery, TariffFirstQuery, ProductsQuery)

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
    if isinstance(query, _PRODUCT_FORMS):
        from timeline.query.products import HANDLERS  # only product queries load it

        return _with_text(HANDLERS[type(query)], r, query, text, ctx)
    return answer(r, query, text, ctx)


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
