"""The rebuild figure alone: timeline's full rebuild against the raw scan + decode, side by side.

    python -m benchmarks.rebuild [--events N] [--streams S] [--seed SEED] [--rounds R]
                                 [--workdir DIR] [--empty] [--json OUT]

Builds (or reuses, from --workdir) the harness's N-event timeline database and the raw
events table of the same rows, then runs the harness's two child tasks alternately R times
(`benchmarks.child scan` on the raw file, `benchmarks.child rebuild` on ours), each in a new
process so its peak RSS is its own. Reports the medians and the ratio of the medians, as the
harness's figure "6. full rebuild" does, without the hour of the other figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from . import reference as ref
from .generate import DEFAULT_SEED, batches, generate_rows, new_events
from .harness import BATCH, run_child
from .measure import median
from .sides import ours_create


def _count(db: Path) -> int | None:
    if not db.exists():
        return None
    with sqlite3.connect(db) as c:
        try:
            return c.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        except sqlite3.Error:
            return None


def _fresh(db: Path) -> None:
    for f in db.parent.glob(db.name + "*"):
        f.unlink()


def build(ours: Path, raw: Path, events: int, streams: int, seed: int, log=print) -> None:
    """The N-event timeline database and the raw events table of the same rows (each kept
    when it already holds exactly N events)."""
    # the generated log's late knowledge runs to the end of 2025 plus a year: allowed, as by
    # benchmarks.products, whatever today's date
    os.environ.setdefault("TIMELINE_KNOWN_MARGIN_DAYS", "3650")
    if _count(ours) != events:
        _fresh(ours)
        log(f"building {ours} ({events:,} events)")
        store = ours_create(ours)
        for b in batches(generate_rows(events, streams, seed), BATCH):
            store.append(new_events(b))
        store.close()
    if _count(raw) != events:
        _fresh(raw)
        log(f"building {raw}")
        conn = ref.raw_create(raw)
        for b in batches(generate_rows(events, streams, seed), BATCH):
            ref.raw_append_batch(conn, ref.raw_rows(b))
        conn.close()


def measure(ours: Path, raw: Path, rounds: int, log=print, empty: bool = False) -> dict:
    """`rounds` alternated child runs of the raw scan and our rebuild (and, with `empty`,
    of our rebuild into emptied projection tables); medians and ratios."""
    tasks = ["scan", "rebuild"] + (["rebuild-empty"] if empty else [])
    runs: dict[str, list[dict]] = {t: [] for t in tasks}
    for i in range(rounds):
        for t in tasks:
            runs[t].append(run_child(t, raw if t == "scan" else ours))
        log(f"round {i + 1}: " + ", ".join(
            f"{t} {r['events'] / r['seconds']:,.0f} ev/s ({r['peak_rss_kb'] / 1024:,.0f} MB)"
            for t, r in ((t, runs[t][-1]) for t in tasks)))
    out: dict = {"events": runs["scan"][0]["events"], "rounds": rounds,
                 "streams": runs["rebuild"][0].get("streams")}
    for t, key in (("scan", "scan"), ("rebuild", "ours"), ("rebuild-empty", "ours_empty")):
        if t in runs:
            out[f"{key}_eps"] = median(r["events"] / r["seconds"] for r in runs[t])
            out[f"{key}_seconds"] = median(r["seconds"] for r in runs[t])
            out[f"{key}_rss_mb"] = max(r["peak_rss_kb"] for r in runs[t]) / 1024
    out["ratio"] = out["ours_eps"] / out["scan_eps"]
    if empty:
        out["ratio_empty"] = out["ours_empty_eps"] / out["scan_eps"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rebuild", description=__doc__)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workdir", help="where the databases are built or reused")
    p.add_argument("--json", help="write the result here too")
    p.add_argument("--empty", action="store_true",
                   help="also time the rebuild into emptied projection tables (every row "
                        "written), as after a migration or a change of the fold")
    a = p.parse_args(argv)
    tmp = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="timeline-rebuild-"))
    tmp.mkdir(parents=True, exist_ok=True)
    tag = f"{a.events}-{a.streams}-{a.seed}"
    ours, raw = tmp / f"ours-{tag}.db", tmp / f"raw-{tag}.db"
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.monotonic()
    build(ours, raw, a.events, a.streams, a.seed, log)
    log(f"databases ready in {time.monotonic() - t0:.0f} s")
    r = measure(ours, raw, a.rounds, log, a.empty)
    print(f"rebuild of {r['events']:,} events ({r['streams']:,} streams), medians of "
          f"{r['rounds']} alternated rounds:")
    print(f"  ours (full rebuild)  {r['ours_eps']:>10,.0f} ev/s  {r['ours_seconds']:7.2f} s  "
          f"peak RSS {r['ours_rss_mb']:,.0f} MB")
    if a.empty:
        print(f"  ours, empty tables   {r['ours_empty_eps']:>10,.0f} ev/s  "
              f"{r['ours_empty_seconds']:7.2f} s  peak RSS {r['ours_empty_rss_mb']:,.0f} MB")
    print(f"  raw scan + decode    {r['scan_eps']:>10,.0f} ev/s  {r['scan_seconds']:7.2f} s  "
          f"peak RSS {r['scan_rss_mb']:,.0f} MB")
    print(f"  ratio                {r['ratio']:.3f}x (target >= 0.4x)"
          + (f"; empty tables {r['ratio_empty']:.3f}x" if a.empty else ""))
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
