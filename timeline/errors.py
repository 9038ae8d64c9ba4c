"""The package's exception hierarchy: one root, one class per kind of failure."""
from __future__ import annotations


class TimelineError(Exception):
    """Root of every error the package raises on purpose."""


class StoreError(TimelineError):
    """The event store could not do what was asked (driver errors are wrapped here)."""


class SchemaError(StoreError):
    """The database schema is missing, foreign or newer than this code."""


class ImmutableLogError(StoreError):
    """An UPDATE or DELETE on the append-only log was attempted."""


class ReadOnlyError(StoreError):
    """A write was attempted through a read-only connection."""


class ConcurrencyError(StoreError):
    """A stream's version was not the one the writer expected."""

    def __init__(self, stream: str, expected: int, actual: int):
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(
            f"concurrency conflict on stream {stream!r}: expected version {expected}, "
            f"actual version {actual}; nothing was written"
        )


class EventValidationError(TimelineError):
    """An event (or event file) failed validation; names file, event and field."""

    def __init__(self, message: str, *, file: str | None = None, event: str | None = None,
                 field: str | None = None, line: int | None = None):
        self.file, self.event, self.field, self.line = file, event, field, line
        where = []
        if file:
            where.append(f"{file}:{line}" if line else file)
        if event:
            where.append(f"event {event}")
        if field:
            where.append(f"field {field!r}")
        self.message = message
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class FoldError(EventValidationError):
    """A stream's events fold into a state that contradicts itself (e.g. in force, no rate)."""


class IntegrityError(StoreError):
    """The hash chain or another log guarantee does not hold."""

    def __init__(self, message: str, position: int | None = None):
        self.position = position
        super().__init__(message)


class QueryError(TimelineError):
    """A query could not be parsed, planned or run; carries line, column and a caret."""

    def __init__(self, message: str, *, query: str = "", line: int = 1, column: int = 1,
                 expected: list[str] | None = None, hint: str | None = None):
        self.message, self.query, self.line, self.column = message, query, line, column
        self.expected = sorted(set(expected or []))
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """The message, the offending query line with a caret, expected tokens and hint."""
        # an argument of the Python API has no query text to point into
        where = f"at line {self.line}, column {self.column}" if self.query else "in the arguments"
        out = [f"error {where}: {self.message}"]
        if self.query:
            lines = self.query.splitlines() or [""]
            text = lines[min(self.line, len(lines)) - 1]
            out.append("  " + text)
            out.append("  " + " " * (max(self.column, 1) - 1) + "^")
        if self.expected:
            out.append("expected one of: " + ", ".join(self.expected))
        if self.hint:
            out.append(self.hint)
        # the query is the user's text: its control characters (ESC and the like) would act
        # on the terminal; one visible character each keeps the caret in its column
        return "\n".join(line.translate(_CONTROLS) for line in out)


_CONTROLS = {c: "?" for c in [*range(0x20), *range(0x7f, 0xa0)] if c != 0x0a}


def describe(exc: TimelineError) -> str:
    """How a user sees an error: a query error with its caret, anything else as `error: …`."""
    return exc.render() if isinstance(exc, QueryError) else f"error: {exc}"
