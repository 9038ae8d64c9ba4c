"""Running any parsed query, `explain` included: the query layer's one entry point."""
from __future__ import annotations

from timeline.projections.reader import Reader
from timeline.query.planner import Answer, Context, answer
from timeline.query.syntax import ExplainQuery, LearnedQuery

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
    return answer(r, query, text, ctx)
