"""How answers and errors leave the server: table cells, numbers, error statuses, JSON."""
from __future__ import annotations

import json

from starlette.responses import Response

from timeline.errors import QueryError, ReadOnlyError, StoreError, TimelineError, describe


def cell(value) -> str:
    """A table cell as text: numbers without a needless .0, structures as JSON."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return num(value)


def num(value) -> str:
    """A number without a needless .0 (anything else as text; None as a dash)."""
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def status_of(exc: TimelineError) -> int:
    """The HTTP status of an error: the asker's mistake 400, the store failing 503."""
    if isinstance(exc, ReadOnlyError):  # a statement that would write: the asker's
        return 400
    if isinstance(exc, StoreError):  # the database is gone, or the read hit the timeout
        return 503
    return 400


def error_json(exc: TimelineError, status: int | None = None) -> Response:
    """An error as the JSON API gives it: the CLI's message (with its caret) and its parts."""
    body: dict[str, object] = {"error": describe(exc)}
    if isinstance(exc, QueryError):
        body.update(message=exc.message, line=exc.line, column=exc.column,
                    expected=exc.expected, hint=exc.hint)
    return Response(json.dumps(body, ensure_ascii=False) + "\n",
                    status_code=status or status_of(exc), media_type="application/json")
