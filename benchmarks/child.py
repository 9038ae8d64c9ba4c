"""Work done in a child process so its peak RSS (VmHWM) is its own.

`python -m benchmarks.child rebuild|rebuild-empty|scan|replay DB` prints one JSON line
(rebuild-empty: the rebuild after the projection rows were deleted, untimed):
{"seconds": …, "events": …, "peak_rss_kb": …, "baseline_rss_kb": …} where baseline is the
peak after imports and opening, before the measured work.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    what, db = argv[0], Path(argv[1])
    from benchmarks.measure import vm_hwm_kb

    if what in ("rebuild", "rebuild-empty"):
        from sqlalchemy import text

        from timeline.store.store import Store

        store = Store.open(str(db))
        events = store.count()
        if what == "rebuild-empty":  # every projection row to write, none to compare
            with store.engine.begin() as c:
                for table in ("intervals", "known_intervals", "measures"):
                    c.execute(text(f"DELETE FROM {table}"))
        base = vm_hwm_kb()
        t0 = time.perf_counter_ns()
        streams = store.rebuild()
        elapsed = time.perf_counter_ns() - t0
        extra = {"streams": streams}
        store.close()
    elif what == "scan":
        from benchmarks.reference import raw_connect, raw_scan

        conn = raw_connect(db)
        base = vm_hwm_kb()
        t0 = time.perf_counter_ns()
        events = raw_scan(conn)
        elapsed = time.perf_counter_ns() - t0
        extra = {}
        conn.close()
    elif what == "replay":
        from benchmarks.reference import EsStore

        es = EsStore(db)
        base = vm_hwm_kb()
        t0 = time.perf_counter_ns()
        events = es.replay()
        elapsed = time.perf_counter_ns() - t0
        extra = {}
        es.close()
    else:
        print(f"unknown child task {what!r}", file=sys.stderr)
        return 2
    print(json.dumps({"task": what, "seconds": elapsed / 1e9, "events": events,
                      "peak_rss_kb": vm_hwm_kb(), "baseline_rss_kb": base, **extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
