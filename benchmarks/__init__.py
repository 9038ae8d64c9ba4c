"""Benchmark harness of timeline: `python -m benchmarks --help`.

Generates a synthetic log deterministically, measures the seven figures of the performance
issue on fresh SQLite files, and measures the references (the `eventsourcing` library's
SQLite application recorder and raw `sqlite3`) in the same run on the same rows.
"""
