"""The fields queries may filter on, by where they live (the Reader and the `where` compiler
both read them; completion offers the same names)."""

EVENT_COLUMNS = ("position", "id", "stream", "version", "type", "effective", "announced",
                 "known", "recorded_at")
MEASURE_COLUMNS = ("kind", "imposer", "target", "scope", "title")
STATE_COLUMNS = ("rate", "status", "legal_status")
# Every name a `where` may use besides JSON keys of the log, per query form.
EVENT_FIELDS = EVENT_COLUMNS + MEASURE_COLUMNS + ("source", "quote", "title")
MEASURE_FIELDS = MEASURE_COLUMNS + ("measure", "stream", "events", "first_effective",
                                    "last_change") + STATE_COLUMNS
# What a `where` on a measure's state may name besides MEASURE_FIELDS and its state's keys:
# the bounds of the interval in force, `since` and `until`
INTERVAL_FIELDS = ("since", "until")
