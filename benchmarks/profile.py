"""Profile one of timeline's figures with cProfile and summarise where the time goes.

    python -m benchmarks.profile FIGURE [--events N] [--streams S] [--workdir DIR] [--out F]

FIGURE is one of: append (one batch of 10,000 after N events), single (1,000 single-event
appends after N events), asof, e2e, known (queries on an N-event log), rebuild, cli (one
`timeline query` run in-process, imports included). The N-event database is built with the
harness's generator (or reused from --workdir when it already holds it). The summary lists
the functions with the largest cumulative time as a percentage of the profiled total; the
raw profile is written to --out for `python -m pstats` or snakeviz.
"""
from __future__ import annotations

import argparse
import os
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .generate import DEFAULT_SEED, batches, generate, new_events, query_pairs
from .harness import BATCH, known_triples, make_e2e, ours_create, ours_open_readonly

FIGURES = ("append", "single", "asof", "e2e", "known", "rebuild", "cli")


def build(db: Path, rows) -> None:
    """An N-event timeline database at `db` (reused when it already has exactly N events)."""
    import sqlite3

    if db.exists():
        with sqlite3.connect(db) as c:
            if c.execute("SELECT COUNT(*) FROM events").fetchone()[0] == len(rows):
                return
        for f in db.parent.glob(db.name + "*"):
            f.unlink()
    store = ours_create(db)
    for b in batches(rows, BATCH):
        store.append(new_events(b))
    store.close()


def summarise(prof: cProfile.Profile, total_s: float, top: int = 30) -> str:
    """The `top` functions by cumulative time, with their share of the total."""
    st = pstats.Stats(prof)
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append((ct, tt, nc, f"{Path(file).parent.name}/{Path(file).name}:{line}({name})"
                     if file != "~" else name))
    rows.sort(reverse=True)
    total = max(r[0] for r in rows) or 1e-9
    out = [f"profiled wall time {total_s:.3f} s (profiler overhead included)",
           f"{'cum %':>6} {'self %':>6} {'calls':>9}  function"]
    for ct, tt, nc, label in rows[:top]:
        out.append(f"{100 * ct / total:6.1f} {100 * tt / total:6.1f} {nc:9d}  {label}")
    out.append("")
    out.append("by self time:")
    for ct, tt, nc, label in sorted(rows, key=lambda r: -r[1])[:15]:
        out.append(f"{100 * ct / total:6.1f} {100 * tt / total:6.1f} {nc:9d}  {label}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    # the generator dates a large log's knowledge up to years ahead (a synthetic calendar):
    # admission refuses knowledge beyond today + 2 days unless the margin is widened
    os.environ.setdefault("TIMELINE_KNOWN_MARGIN_DAYS", "3650")
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--workdir", help="where the N-event database is built or reused")
    p.add_argument("--out", help="write the raw profile here (default FIGURE.prof in workdir)")
    p.add_argument("--samples", type=int, default=2000)
    a = p.parse_args(argv)

    extra = {"append": BATCH, "single": 1000}.get(a.figure, 0)
    w = generate(a.events + extra, a.streams, a.seed)
    base_rows, tail = w.rows[:a.events], w.rows[a.events:]
    tmp = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="timeline-prof-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / f"profile-{a.events}-{a.streams}-{a.seed}.db"
    print(f"building/reusing {db} ({a.events:,} events)", file=sys.stderr)
    build(db, base_rows)
    work = tmp / "work.db"
    if a.figure in ("append", "single", "rebuild"):  # these write: profile on a copy
        for f in tmp.glob("work.db*"):
            f.unlink()
        for f in db.parent.glob(db.name + "*"):
            shutil.copy(f, tmp / f.name.replace(db.name, "work.db"))
    else:
        work = db

    prof = cProfile.Profile()
    if a.figure in ("append", "single", "rebuild"):
        from timeline.store.store import Store

        store = Store.open(str(work))
        evs = new_events(tail)
        if a.figure == "append":
            fn = lambda: store.append(evs)  # noqa: E731
        elif a.figure == "single":
            fn = lambda: [store.append([e]) for e in evs]  # noqa: E731
        else:
            fn = store.rebuild
    elif a.figure == "cli":
        import contextlib
        import io

        s, d = query_pairs(w.rows, 1, a.seed + 4)[0]

        def fn():
            from timeline.surfaces.cli import main as cli_main
            with contextlib.redirect_stdout(io.StringIO()):
                cli_main(["query", f"state of {s} as of {d}", "--format", "json", "--db",
                          str(work)])
        if "timeline.surfaces.cli" in sys.modules or "sqlalchemy" in sys.modules:
            print("note: modules already imported in this process are not re-imported; "
                  "use `python -X importtime` for import costs", file=sys.stderr)
    else:
        store = ours_open_readonly(work)
        reading = store.reading()
        conn = reading.__enter__()  # one Reader for the whole profile
        pairs = query_pairs(w.rows, a.samples, a.seed + 2)
        if a.figure == "asof":
            fn = lambda: [conn.state_at(s, d) for s, d in pairs]  # noqa: E731
        elif a.figure == "e2e":
            e2e = make_e2e(conn)
            texts = [f"state of {s} as of {d}" for s, d in pairs]
            e2e(texts[0])
            fn = lambda: [e2e(t) for t in texts]  # noqa: E731
        else:
            e2e = make_e2e(conn)
            texts = [f"state of {s} as of {d} known on {k}"
                     for s, d, k in known_triples(pairs, a.seed + 3)]
            e2e(texts[0])
            fn = lambda: [e2e(t) for t in texts]  # noqa: E731
    t0 = time.perf_counter()
    prof.enable()
    fn()
    prof.disable()
    elapsed = time.perf_counter() - t0
    out = Path(a.out) if a.out else tmp / f"{a.figure}.prof"
    prof.dump_stats(out)
    print(f"{a.figure} on {a.events:,} events / {a.streams:,} streams; raw profile: {out}")
    print(summarise(prof, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
