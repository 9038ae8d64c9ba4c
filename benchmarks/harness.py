"""The harness: generate, measure timeline and the references in one run, print one table.

    python -m benchmarks [--events N] [--streams S] [--quick] [--json OUT] [--markdown MD]
                         [--skip-reference] [--seed SEED] [--workdir DIR]
                         [--growth-at N] [--pg-events N] [--pg-single N]

Every figure is measured on fresh database files in a temporary directory. Long figures
(appends, rebuild) run once, interleaved with their references batch by batch so that drift
of the machine hits both sides; short ones (latencies, CLI start) are repeated in rounds and
reported as medians, and ratios are medians of the per-batch / per-round ratios.

With TIMELINE_BENCH_POSTGRES_URL set (postgresql+psycopg://user@host:port/db), the run also
measures appends and point queries on PostgreSQL (`--pg-events` rows of the same seed) in a
scratch database it creates next to `db` and drops afterwards; those rows are labelled
"PostgreSQL" in the table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import reference as ref
from itertools import islice
from typing import Iterable, Iterator, Sequence

from .generate import DEFAULT_SEED, START, SPAN_DAYS, Row, RowsHash, batches, generate_rows
from .generate import new_events, query_pairs
from .measure import latencies_ns, median, now_ns, paired_latencies, percentile
from .sides import SqliteSides, ours_create, ours_open_readonly  # noqa: F401 (profile's too)

BATCH = 10_000
GROWTH_AT = 100_000
PG_EVENTS = 200_000
REPO = Path(__file__).resolve().parent.parent


# -- our side ----------------------------------------------------------------------------

def make_e2e(conn):
    """fn(text): parse, plan, run, format to JSON on one open Reader: the language end to end."""
    from timeline.surfaces.output import render
    from timeline.query.parser import parse
    from timeline.query.execute import Context, run

    def e2e(text: str) -> str:
        return render(run(conn, parse(text), text, Context()), "json")
    return e2e


def known_triples(pairs: list[tuple[str, str]], seed: int) -> list[tuple[str, str, str]]:
    """(stream, day, known_on) from (stream, day) pairs, known_on uniform over the span."""
    import random

    rng = random.Random(seed)
    return [(s, d, (START + dt.timedelta(days=rng.randrange(SPAN_DAYS))).isoformat())
            for s, d in pairs]


# -- the run -----------------------------------------------------------------------------

class Log:
    """Progress lines on stderr, with the elapsed time of the run."""

    def __init__(self, quiet: bool = False):
        self.t0, self.quiet = time.monotonic(), quiet
        self.phases: dict[str, float] = {}
        self._phase: tuple[str, float] | None = None

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def phase(self, name: str) -> None:
        t = time.monotonic()
        if self._phase:
            self.phases[self._phase[0]] = round(t - self._phase[1], 2)
        self._phase = (name, t) if name else None
        if name:
            self(name)


def _cut_batches(rows: Iterable[Row], size: int, cut: int) -> Iterator[Sequence[Row]]:
    """Batches of `size` rows, one of which ends exactly at row `cut` (when cut > 0)."""
    it = iter(rows)
    if cut:
        yield from batches(islice(it, cut), size)
    yield from batches(it, size)


def measure_appends(rows: Iterable[Row], total: int, sides, es_on: bool, log: Log,
                    growth_at: int | None, hasher: RowsHash | None = None) -> dict:
    """Batched append of every row: ours, eventsourcing, raw, interleaved batch by batch.

    `rows` may be a stream (a 10M-row workload is generated as it is appended, untimed);
    `hasher` sees every row. Leaves the three full databases (`ours`, `es`, `raw`) for the
    read figures; at `growth_at` rows it pauses (untimed) to snapshot ours and raw for the
    growth check, which measures both sizes side by side at the end.
    """
    ours = sides.ours_create("ours")
    es = sides.es_open("es") if es_on else None
    raw = sides.raw_create("raw")
    # every row the append writes, replayed raw (SQLite only: PgSides has no such side)
    full = sides.raw_full_create("rawfull", "ours") if hasattr(sides, "raw_full_create") else None
    recorder = ref.WriteRecorder().__enter__() if full is not None else None
    t_ours, t_es, t_raw, ratios_es, ratios_raw, sizes = [], [], [], [], [], []
    t_full, ratios_full = [], []
    done, growth_out = 0, None
    cut = growth_at if growth_at and growth_at < total else 0
    for b in _cut_batches(rows, BATCH, cut):
        if hasher is not None:
            for r in b:
                hasher.add(r)
        evs = new_events(b)
        sizes.append(len(b))
        t0 = now_ns()
        ours.append(evs)
        t_ours.append(now_ns() - t0)
        del evs
        if es is not None:
            stored = ref.es_stored(b)
            t0 = now_ns()
            es.insert(stored)
            t_es.append(now_ns() - t0)
            ratios_es.append(t_es[-1] / t_ours[-1])
            del stored
        params = ref.raw_rows(b)
        t0 = now_ns()
        sides.raw_append_batch(raw, params)
        t_raw.append(now_ns() - t0)
        ratios_raw.append(t_raw[-1] / t_ours[-1])
        if full is not None:
            writes = recorder.take()
            t0 = now_ns()
            sides.raw_full_append(full, writes)
            t_full.append(now_ns() - t0)
            ratios_full.append(t_full[-1] / t_ours[-1])
            del writes
        done += len(b)
        if len(t_ours) % 10 == 0 or done == total:
            log(f"  {sides.label + ' ' if sides.label else ''}batched append: {done:,} rows; "
                f"last batch ours {len(b) / (t_ours[-1] / 1e9):,.0f} ev/s"
                + (f", eventsourcing {len(b) / (t_es[-1] / 1e9):,.0f} ev/s" if t_es else "")
                + f", raw {len(b) / (t_raw[-1] / 1e9):,.0f} ev/s"
                + (f", raw every row {len(b) / (t_full[-1] / 1e9):,.0f} ev/s" if t_full else ""))
        if growth_at and growth_out is None and done >= growth_at:
            log(f"  growth check: snapshot of the databases at {done:,} rows")
            sides.snapshot("ours", "ours-small")
            sides.snapshot("raw", "raw-small")
            growth_out = {"at_rows": done}
    ours.close()
    if es is not None:
        es.close()
    raw.close()
    if full is not None:
        recorder.__exit__(None, None, None)
        full.close()

    def rate(ts):
        return done / (sum(ts) / 1e9) if ts else None

    def per_batch(ts):
        return [round(k / (t / 1e9)) for k, t in zip(sizes, ts)]
    return {
        "rows": done,
        "ours_eps": rate(t_ours), "es_eps": rate(t_es), "raw_eps": rate(t_raw),
        "ratio_es": median(ratios_es) if ratios_es else None,
        "ratio_raw": median(ratios_raw),
        "full_eps": rate(t_full), "ratio_full": median(ratios_full) if ratios_full else None,
        "batches": len(t_ours),
        "ours_batch_eps": per_batch(t_ours), "es_batch_eps": per_batch(t_es),
        "raw_batch_eps": per_batch(t_raw),
        "growth": growth_out,
    }


def measure_single(prefix: Sequence[Row], streams: int, sides, es_on: bool, n: int, log: Log,
                   chunk: int = 500) -> dict:
    """`n` single-event appends, one durable transaction each, after the S opening rows.

    `prefix` holds the workload's first S + n rows. Fresh databases; the first S rows (one
    opening event per stream) are loaded untimed so the timed appends are the ordinary mix
    (amendments, retroactive ones, schedules). The three stores take turns by chunks of
    `chunk` events.
    """
    pre = prefix[:streams]
    timed = prefix[streams:streams + n]
    ours = sides.ours_create("single-ours")
    for b in batches(pre, BATCH):
        ours.append(new_events(b))
    es = None
    if es_on:
        es = sides.es_open("single-es")
        es.insert(ref.es_stored(pre))
    raw = sides.raw_create("single-raw")
    sides.raw_append_batch(raw, ref.raw_rows(pre))
    ne, st, rr = new_events(timed), (ref.es_stored(timed) if es_on else []), ref.raw_rows(timed)
    t_ours = t_es = t_raw = 0
    ratios_es, ratios_raw = [], []
    for i in range(0, len(timed), chunk):
        t0 = now_ns()
        for ev in ne[i:i + chunk]:
            ours.append([ev])
        a = now_ns() - t0
        t_ours += a
        if es is not None:
            t0 = now_ns()
            for s in st[i:i + chunk]:
                es.insert([s])
            b = now_ns() - t0
            t_es += b
            ratios_es.append(b / a)
        t0 = now_ns()
        for p in rr[i:i + chunk]:
            sides.raw_append_one(raw, p)
        c = now_ns() - t0
        t_raw += c
        ratios_raw.append(c / a)
    log(f"  {sides.label + ' ' if sides.label else ''}single append: {len(timed):,} events each")
    ours.close()
    if es is not None:
        es.close()
    raw.close()
    k = len(timed)
    return {"events": k, "ours_eps": k / (t_ours / 1e9),
            "es_eps": k / (t_es / 1e9) if es_on else None, "raw_eps": k / (t_raw / 1e9),
            "ratio_es": median(ratios_es) if ratios_es else None,
            "ratio_raw": median(ratios_raw)}


def _decoded(row):
    """The state of a StateRow (which may decode lazily): every side returns decoded JSON."""
    return None if row is None else row.state


def point_rounds(sides, suffix: str, pairs: list, rounds: int, es=None,
                 triples: list | None = None) -> dict:
    """As-of point query through the storage API vs the raw indexed lookup (and the
    eventsourcing latest-event select), `rounds` rounds over the same pairs; with `triples`,
    also `known on` through the API (reader.state) vs the raw known-on lookup.

    Reads the sides `ours{suffix}` and `raw{suffix}`.
    """
    store = sides.ours_open_readonly(f"ours{suffix}")
    raw = sides.raw_connect(f"raw{suffix}")
    out: dict[str, list] = {k: [] for k in (
        "ours_p50", "ours_p99", "raw_p50", "raw_p99", "es_p50", "es_p99", "ratio",
        "known_ours_p50", "known_ours_p99", "known_raw_p50", "known_raw_p99", "known_ratio")}

    def add(prefix, o, r):
        for q in (50, 99):
            out[f"{prefix}ours_p{q}"].append(percentile(o, q) / 1000)
            out[f"{prefix}raw_p{q}"].append(percentile(r, q) / 1000)
        out[f"{prefix}ratio"].append(out[f"{prefix}ours_p50"][-1] / out[f"{prefix}raw_p50"][-1])
    with store.reading() as rd:
        for _ in range(rounds):
            add("", latencies_ns(lambda s, d: _decoded(rd.state_at(s, d)), pairs),
                latencies_ns(lambda s, d: sides.raw_as_of(raw, s, d), pairs))
            if es is not None:
                e = latencies_ns(es.latest, pairs)
                out["es_p50"].append(percentile(e, 50) / 1000)
                out["es_p99"].append(percentile(e, 99) / 1000)
            if triples:
                add("known_",
                    latencies_ns(lambda s, d, k: _decoded(rd.state(s, d, k)), triples),
                    latencies_ns(lambda s, d, k: sides.raw_known_on(raw, s, d, k), triples))
    store.close()
    raw.close()
    return {k: (median(v) if v else None) for k, v in out.items()} | {
        "rounds": rounds, "samples": len(pairs)}


def measure_growth(sides, pairs: list, triples: list, rounds: int, at_rows: int) -> dict:
    """As-of and known-on p50 on the full databases vs the snapshots at `at_rows` rows.

    Both sizes are measured now, round by round in alternating order, on the same pairs
    (every stream exists at both sizes): the ratio is not skewed by the machine's load
    drifting between the start and the end of the run.
    """
    small, full = [], []
    for r in range(rounds):
        order = [("-small", small), ("", full)]
        for suffix, out in (order if r % 2 else order[::-1]):
            out.append(point_rounds(sides, suffix, pairs, 1, None, triples))
    g = {"at_rows": at_rows}
    for prefix in ("", "known_"):
        for side in ("ours", "raw"):
            key = f"{prefix}{side}_p50"
            g[f"small_{key}"] = median(x[key] for x in small)
            g[f"full_{key}"] = median(x[key] for x in full)
            g[f"{prefix}{side}"] = median(f[key] / s[key] for f, s in zip(full, small))
    return g


def measure_queries(sides, pairs: list, es_on: bool, rounds: int, e2e_samples: int,
                    known_samples: int, seed: int, log: Log, total: int,
                    growth_at: int | None = None) -> dict:
    """Figures 3-5 (and 8, the growth check) on the full SQLite databases."""
    es = sides.es_open("es") if es_on else None
    log(f"  as-of point query: {len(pairs):,} pairs x {rounds} rounds")
    asof = point_rounds(sides, "", pairs, rounds, es)
    if es is not None:
        es.close()
    triples = known_triples(pairs[:known_samples], seed + 3)
    growth = None
    if growth_at:
        log(f"  growth: as-of and known-on p50 at {total:,} vs at {growth_at:,} rows, "
            f"{rounds} rounds")
        growth = measure_growth(sides, pairs, triples, rounds, growth_at)

    texts = [f"state of {s} as of {d}" for s, d in pairs[:e2e_samples]]
    ktexts = [f"state of {s} as of {d} known on {k}" for s, d, k in triples]
    store = sides.ours_open_readonly("ours")
    raw = sides.raw_connect("raw")
    res: dict[str, list] = {k: [] for k in (
        "e2e_p50", "e2e_p99", "known_p50", "known_p99", "known_api_p50", "known_api_p99",
        "raw_known_p50", "raw_known_p99")}
    log(f"  end to end: {len(texts):,} queries; known on: {len(ktexts):,} x {rounds} rounds")
    # a second Store, not a second connection of the same one: the read-only engine's
    # pool hands every connection of a thread the same driver connection
    store_api = sides.ours_open_readonly("ours")
    with store.reading() as conn, store_api.reading() as conn_api:
        e2e = make_e2e(conn)
        # a wrong answer would make the timings meaningless: check one against the API
        s0, d0 = pairs[0]
        got = json.loads(e2e(texts[0]))["results"][0]
        want = conn.state_at(s0, d0)
        assert (got["since"], got["state"]) == ((want.valid_from, want.state) if want
                                                else (None, None)), "e2e answer mismatch"
        for _ in range(rounds):
            t = latencies_ns(lambda q: e2e(q), [(q,) for q in texts])
            res["e2e_p50"].append(percentile(t, 50) / 1000)
            res["e2e_p99"].append(percentile(t, 99) / 1000)
            # the end-to-end and the API known-on reads fold the same streams: measured
            # pairwise, alternating which goes first, each on its own connection (its own
            # SQLite page cache), so that neither runs on pages the other just read
            t, u = paired_latencies(lambda s, d, k, q: e2e(q),
                                    lambda s, d, k, q: _decoded(conn_api.state(s, d, k)),
                                    [(*tr, q) for tr, q in zip(triples, ktexts)], warmup=50)
            res["known_p50"].append(percentile(t, 50) / 1000)
            res["known_p99"].append(percentile(t, 99) / 1000)
            res["known_api_p50"].append(percentile(u, 50) / 1000)
            res["known_api_p99"].append(percentile(u, 99) / 1000)
            t = latencies_ns(lambda s, d, k: sides.raw_known_on(raw, s, d, k), triples)
            res["raw_known_p50"].append(percentile(t, 50) / 1000)
            res["raw_known_p99"].append(percentile(t, 99) / 1000)
    store.close()
    store_api.close()
    raw.close()
    return {"as_of": asof, "growth": growth, **{k: median(v) for k, v in res.items()},
            "e2e_samples": len(texts), "known_samples": len(ktexts)}


def measure_postgres(url: str, a, es_on: bool, log: Log, known_samples: int) -> dict:
    """Figures 1-3 and 5 (API) on PostgreSQL: a workload of `a.pg_events` rows (same seed and
    streams), in a scratch database created and dropped here."""
    from .postgres import PgRun, PgSides, es_postgres_unusable

    n = min(a.pg_events, a.events)
    why_not = es_postgres_unusable() if es_on else None
    es_pg = es_on and why_not is None
    if why_not:
        log(f"  {why_not}: eventsourcing's PostgreSQL columns are skipped")
    run = PgRun(url)
    log(f"  PostgreSQL {run.settings['server_version']}, scratch "
        f"{'database ' + run.database if run.database else 'schemas ' + run.prefix + '*'}, "
        f"{n:,} events")
    try:
        sides = PgSides(run)
        hasher, stats = RowsHash(), {}
        append = measure_appends(generate_rows(n, a.streams, a.seed, stats), n, sides, es_pg,
                                 log, None, hasher)
        prefix = list(islice(generate_rows(n, a.streams, a.seed), a.streams + a.pg_single))
        single = measure_single(prefix, a.streams, sides, es_pg, min(a.pg_single, n - a.streams),
                                log)
        pairs = query_pairs(prefix[:a.streams], a.samples, a.seed + 2)
        triples = known_triples(pairs[:known_samples], a.seed + 3)
        log(f"  PostgreSQL as-of and known-on point queries: {len(pairs):,} / {len(triples):,}"
            f" x {a.rounds} rounds")
        es = sides.es_open("es") if es_pg else None
        points = point_rounds(sides, "", pairs, a.rounds, es, triples)
        if es is not None:
            es.close()
    finally:
        run.drop()
    return {"events": n, "rows_hash": hasher.hexdigest(), "database": run.database,
            "schemas": run.schemas if not run.database else None, "settings": run.settings,
            "eventsourcing": es_pg, "append": append, "single": single, "points": points}


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def run_child(task: str, db: Path) -> dict:
    """Run benchmarks.child in a new process and return its JSON report."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.child", task, str(db)],
                         capture_output=True, text=True, env=_child_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {task} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def timeline_command() -> list[str]:
    """How to start the `timeline` CLI as a new process."""
    script = Path(sys.executable).parent / "timeline"
    if script.exists():
        return [str(script)]
    found = shutil.which("timeline")
    return [found] if found else [sys.executable, "-m", "timeline"]


def measure_cli(db: Path, query: str, runs: int) -> dict:
    """Wall time of the CLI as a new process next to importing its three runtime deps."""
    cli = timeline_command() + ["query", query, "--format", "json", "--db", str(db)]
    base = [sys.executable, "-c", "import sqlalchemy, lark, dateutil"]
    env = _child_env()
    # the dependencies' bytecode is on disk (pip compiles what it installs); a source tree
    # run with PYTHONDONTWRITEBYTECODE would compile timeline's modules on every start
    import compileall
    import timeline

    compileall.compile_dir(str(Path(timeline.__file__).parent), quiet=1)

    def once(cmd):
        t0 = now_ns()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        t = now_ns() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed: {p.stderr.decode()}")
        return t, p.stdout
    _, stdout = once(cli)  # warm-up (and a check that it answers)
    json.loads(stdout)
    once(base)
    c, b = [], []
    for _ in range(runs):
        c.append(once(cli)[0] / 1e6)
        b.append(once(base)[0] / 1e6)
    return {"ours_ms": median(c), "imports_ms": median(b),
            "ratio": median(x / y for x, y in zip(c, b)), "runs": runs,
            "command": shlex.join(cli)}


# -- reporting ---------------------------------------------------------------------------

def _fig(key, figure, unit, ours, reference, ref_name, ratio, target, met, primary=True):
    return {"key": key, "figure": figure, "unit": unit, "ours": ours, "reference": reference,
            "reference_name": ref_name, "ratio": ratio, "target": target, "met": met,
            "primary": primary}


def _ge(x, t):
    return None if x is None else x >= t


def _le(x, t):
    return None if x is None else x <= t


def figures(r: dict) -> list[dict]:
    """The table rows from the raw results."""
    a, s, q, rb, cli = r["append"], r["single"], r["queries"], r["rebuild"], r["cli"]
    ao = q["as_of"]
    out = [
        _fig("batched_append", "1. batched append (10k/txn)", "events/s", a["ours_eps"],
             a["es_eps"], "eventsourcing insert_events", a["ratio_es"],
             ">= 0.35x eventsourcing", _ge(a["ratio_es"], 0.35)),
        _fig("batched_append_raw", "   vs raw sqlite3 executemany", "events/s", a["ours_eps"],
             a["raw_eps"], "raw sqlite3 executemany", a["ratio_raw"], ">= 0.7x raw insert",
             _ge(a["ratio_raw"], 0.7)),
        _fig("batched_append_full", "   vs raw executemany of every row it writes", "events/s",
             a["ours_eps"], a.get("full_eps"), "raw sqlite3 executemany, all tables",
             a.get("ratio_full"), "(info)", None, False),
        _fig("single_append", "2. single append (1 txn/event)", "events/s", s["ours_eps"],
             s["es_eps"], "eventsourcing insert_events([1])", s["ratio_es"],
             ">= 0.6x eventsourcing", _ge(s["ratio_es"], 0.6)),
        _fig("single_append_raw", "   vs raw sqlite3 single insert", "events/s", s["ours_eps"],
             s["raw_eps"], "raw sqlite3 insert+commit", s["ratio_raw"], "(info)", None, False),
        _fig("as_of_p50", "3. as-of point query (API) p50", "us", ao["ours_p50"], ao["raw_p50"],
             "raw sqlite3 indexed lookup", ao["ratio"], "<= 1.5x raw lookup",
             _le(ao["ratio"], 1.5)),
        _fig("as_of_p99", "   as-of point query p99", "us", ao["ours_p99"], ao["raw_p99"],
             "raw sqlite3 indexed lookup", ao["ours_p99"] / ao["raw_p99"], "(info)", None,
             False),
        _fig("as_of_es", "   vs eventsourcing latest-event select p50", "us", ao["ours_p50"],
             ao["es_p50"], "eventsourcing select_events(desc, limit=1)",
             ao["ours_p50"] / ao["es_p50"] if ao["es_p50"] else None, "(info)", None, False),
        _fig("e2e_p50", "4. `state of X as of D` end to end p50", "us", q["e2e_p50"],
             ao["raw_p50"], "raw sqlite3 indexed lookup", q["e2e_p50"] / ao["raw_p50"],
             "<= 250 us", _le(q["e2e_p50"], 250)),
        _fig("e2e_p99", "   end to end p99", "us", q["e2e_p99"], ao["raw_p99"],
             "raw sqlite3 indexed lookup", q["e2e_p99"] / ao["raw_p99"], "(info)", None, False),
        _fig("known_on_p50", "5. `... known on K` end to end p50", "us", q["known_p50"],
             q["raw_known_p50"], "raw sqlite3 lookup with known<=K",
             q["known_p50"] / q["raw_known_p50"], "<= 250 us", _le(q["known_p50"], 250)),
        _fig("known_on_p99", "   known on, end to end p99", "us", q["known_p99"],
             q["raw_known_p99"], "raw sqlite3 lookup with known<=K",
             q["known_p99"] / q["raw_known_p99"], "(info)", None, False),
        _fig("known_on_api_p50", "   known on, storage API (reader.state) p50", "us",
             q["known_api_p50"], q["raw_known_p50"], "raw sqlite3 lookup with known<=K",
             q["known_api_p50"] / q["raw_known_p50"], "<= 2x raw lookup",
             _le(q["known_api_p50"] / q["raw_known_p50"], 2.0)),
        _fig("rebuild", "6. full rebuild (projections intact)", "events/s", rb["ours_eps"],
             rb["scan_eps"],
             "raw sqlite3 scan + json.loads", rb["ours_eps"] / rb["scan_eps"],
             ">= 0.4x raw scan", _ge(rb["ours_eps"] / rb["scan_eps"], 0.4)),
        _fig("rebuild_empty", "   rebuild into emptied projection tables", "events/s",
             rb.get("empty_eps"), rb["scan_eps"], "raw sqlite3 scan + json.loads",
             rb["empty_eps"] / rb["scan_eps"] if rb.get("empty_eps") else None, "(info)", None,
             False),
        _fig("rebuild_rss", "   rebuild peak RSS", "MB", rb["ours_rss_mb"], rb["scan_rss_mb"],
             "raw scan process peak RSS", rb["ours_rss_mb"] / rb["scan_rss_mb"], "<= 250 MB",
             _le(rb["ours_rss_mb"], 250)),
        _fig("replay_es", "   vs eventsourcing notification-log replay", "events/s",
             rb["ours_eps"], rb["es_replay_eps"], "eventsourcing select_notifications",
             rb["ours_eps"] / rb["es_replay_eps"] if rb["es_replay_eps"] else None, "(info)",
             None, False),
        _fig("cli_cold_start", "7. CLI cold start (query --format json)", "ms", cli["ours_ms"],
             cli["imports_ms"], "python -c 'import sqlalchemy, lark, dateutil'", cli["ratio"],
             "<= 0.8x imports", _le(cli["ratio"], 0.8)),
    ]
    g = q.get("growth")
    if g is not None:
        out.append(_fig("growth", f"8. growth: as-of p50 at {r['events']:,} / at "
                                  f"{g['at_rows']:,}", "x", g["ours"], g["raw"],
                        "raw lookup's own growth", g["ours"] / g["raw"], "<= 1.5x",
                        _le(g["ours"], 1.5)))
        if g.get("known_ours") is not None:
            out.append(_fig("growth_known", "   growth: known-on p50 (reader.state), same sizes",
                            "x", g["known_ours"], g["known_raw"],
                            "raw known-on lookup's own growth", g["known_ours"] / g["known_raw"],
                            "<= 1.5x", _le(g["known_ours"], 1.5)))
    if r.get("postgres"):
        out += pg_figures(r["postgres"])
    return out


def pg_figures(pg: dict) -> list[dict]:
    """The PostgreSQL rows of the table (issue 15, target 6: as-of p50 <= 1.5x raw lookup)."""
    a, s, p = pg["append"], pg["single"], pg["points"]
    raw, es = "raw psycopg", "eventsourcing PostgresApplicationRecorder"
    return [
        _fig("pg_batched_append", "PG1. PostgreSQL batched append (10k/txn)", "events/s",
             a["ours_eps"], a["es_eps"], f"{es} insert_events", a["ratio_es"], "(info)", None),
        _fig("pg_batched_append_raw", "     PostgreSQL vs raw psycopg executemany", "events/s",
             a["ours_eps"], a["raw_eps"], f"{raw} executemany", a["ratio_raw"], "(info)",
             None, False),
        _fig("pg_single_append", "PG2. PostgreSQL single append (1 txn/event)", "events/s",
             s["ours_eps"], s["es_eps"], f"{es} insert_events([1])", s["ratio_es"], "(info)",
             None),
        _fig("pg_single_append_raw", "     PostgreSQL vs raw psycopg single insert", "events/s",
             s["ours_eps"], s["raw_eps"], f"{raw} INSERT+COMMIT", s["ratio_raw"], "(info)",
             None, False),
        _fig("pg_as_of_p50", "PG3. PostgreSQL as-of point query (API) p50", "us",
             p["ours_p50"], p["raw_p50"], f"{raw} indexed lookup", p["ratio"],
             "<= 1.5x raw lookup", _le(p["ratio"], 1.5)),
        _fig("pg_as_of_p99", "     PostgreSQL as-of p99", "us", p["ours_p99"], p["raw_p99"],
             f"{raw} indexed lookup", p["ours_p99"] / p["raw_p99"], "(info)", None, False),
        _fig("pg_as_of_es", "     PostgreSQL vs eventsourcing latest-event select p50", "us",
             p["ours_p50"], p["es_p50"], f"{es} select_events(desc, limit=1)",
             p["ours_p50"] / p["es_p50"] if p["es_p50"] else None, "(info)", None, False),
        _fig("pg_known_on_api_p50", "PG5. PostgreSQL known on, storage API (reader.state) p50",
             "us", p["known_ours_p50"], p["known_raw_p50"], f"{raw} lookup with known<=K",
             p["known_ratio"], "(info)", None),
        _fig("pg_known_on_api_p99", "     PostgreSQL known on, storage API p99", "us",
             p["known_ours_p99"], p["known_raw_p99"], f"{raw} lookup with known<=K",
             p["known_ours_p99"] / p["known_raw_p99"], "(info)", None, False),
    ]


def _num(v, unit=""):
    if v is None:
        return "-"
    if unit == "x" or abs(v) < 10:
        return f"{v:.2f}"
    return f"{v:,.0f}"


def table(figs: list[dict], markdown: bool = False) -> str:
    """The figures as a plain-text (or Markdown) table."""
    head = ["figure", "unit", "ours", "reference", "ratio", "target", "met?"]
    rows = []
    for f in figs:
        met = {True: "yes", False: "NO", None: ""}[f["met"]]
        rows.append([f["figure"].strip() if markdown else f["figure"], f["unit"],
                     _num(f["ours"], f["unit"]), _num(f["reference"], f["unit"]),
                     "-" if f["ratio"] is None else f"{f['ratio']:.2f}",
                     f["target"], met])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"
                  for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(head)]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def code_version() -> dict:
    """Which timeline code was measured: HEAD, whether timeline/ is modified, a content hash."""
    import hashlib

    import timeline

    pkg = Path(timeline.__file__).resolve().parent
    h = hashlib.sha256()
    # every module of the package: the layers live in subpackages
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    info = {"timeline_sources_sha256": h.hexdigest()[:16], "head": None, "dirty": None}
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=pkg, capture_output=True,  # noqa: E731
                                        text=True, timeout=10).stdout.strip()
        info["head"] = git("rev-parse", "--short", "HEAD") or None
        info["dirty"] = bool(git("status", "--porcelain", "--", str(pkg)))
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def machine() -> dict:
    """Cores, memory, CPU model, versions."""
    info = {"cores": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        info["memory_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, StopIteration):
        info["memory_gb"] = None
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or None
    from importlib.metadata import version

    for dist in ("sqlalchemy", "lark"):
        info[dist] = version(dist)
    info["eventsourcing"] = ref.eventsourcing_available()
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        info["load_average"] = None
    return info


def markdown_report(result: dict) -> str:
    """The RESULTS.md body for a run."""
    m, wl = result["machine"], result["workload"]
    figs = result["figures"]
    missed = [f for f in figs if f["met"] is False]
    lines = [
        "# Benchmark results",
        "",
        f"Latest full run, {result['date']}. Command: `{result['command']}`",
        "",
        f"Machine: {m['cores']} cores ({m.get('cpu')}), {m['memory_gb']} GB memory, "
        f"{m['platform']}; Python {m['python']}, SQLite {m['sqlite']}, SQLAlchemy "
        f"{m['sqlalchemy']}, lark {m['lark']}, eventsourcing {m['eventsourcing'] or 'absent'}. "
        f"Load average (1, 5, 15 min) at start {m.get('load_average_start')}, at end "
        f"{m.get('load_average')} (the run itself accounts for about 1 of it; more means other "
        f"work shared the machine).",
        "",
        f"Workload: {wl['events']:,} events over {wl['streams']:,} streams, seed {wl['seed']}, "
        f"rows hash `{wl['rows_hash'][:16]}…`; {wl['retroactive']:,} retroactive, "
        f"{wl['known_later']:,} known later than effective, {wl['scheduled']:,} with a "
        f"schedule; mean payload + citation {wl['mean_json_bytes']} bytes of JSON. "
        f"Whole run: {result['wall_seconds'] / 60:.1f} min.",
        "",
        f"Code measured: timeline at {result['code']['head']}"
        f"{' with uncommitted changes' if result['code']['dirty'] else ''} (sources sha256 "
        f"`{result['code']['timeline_sources_sha256']}`)"
        + (" WARNING: the sources changed during the run (now "
           f"`{result['code']['changed_during_run']['timeline_sources_sha256']}`); the child "
           "processes (CLI, rebuild) may have run newer code."
           if result["code"].get("changed_during_run") else "."),
        "",
        table(figs, markdown=True),
        "",
        "Ratios: for rates, ours / reference (higher is better); for latencies and times, "
        "ours / reference (lower is better). Ratios of the appends are medians of the "
        "per-batch (per-chunk of 500 for single appends) ratios; latency figures are medians "
        "over rounds of the percentiles of each round.",
        "",
        f"Targets met: {sum(1 for f in figs if f['met'])} of "
        f"{sum(1 for f in figs if f['met'] is not None)}"
        + (f"; missed: {', '.join(f['key'] for f in missed)}." if missed else "."),
        "",
        "Phases (wall seconds): " + ", ".join(f"{k} {v}" for k, v in result["phases"].items()),
    ]
    pg = result.get("postgres")
    if pg:
        st = pg["settings"]
        lines[-1:-1] = [
            f"PostgreSQL rows (PG1-PG5): PostgreSQL {st['server_version']} on the same machine "
            f"(synchronous_commit={st['synchronous_commit']}, fsync={st['fsync']}: the "
            f"defaults), a workload of {pg['events']:,} events (same seed and streams, rows "
            f"hash `{pg['rows_hash'][:16]}…`), each side in its own schema of a scratch "
            f"database dropped after the run; eventsourcing "
            f"{'PostgresApplicationRecorder' if pg['eventsourcing'] else 'not measured'}.",
            ""]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, help="events to generate (default 1,000,000; "
                                              "--quick 50,000)")
    p.add_argument("--streams", type=int, default=10_000, help="streams (default 10,000)")
    p.add_argument("--quick", action="store_true",
                   help="50,000 events, fewer samples and rounds, no growth check")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--markdown", metavar="MD", help="write a RESULTS.md-style report")
    p.add_argument("--skip-reference", action="store_true",
                   help="skip the eventsourcing reference (raw sqlite3 is always measured)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--single", type=int, default=10_000,
                   help="single appends to time (default 10,000)")
    p.add_argument("--samples", type=int, help="as-of query samples (default 20,000)")
    p.add_argument("--rounds", type=int, help="rounds of the short figures (default 3)")
    p.add_argument("--cli-runs", type=int, help="timed runs of the CLI cold start, each beside "
                                                "a run of the imports alone (default 7; "
                                                "--quick 5)")
    p.add_argument("--workdir", help="keep the databases in this directory (default: a "
                                     "temporary directory, removed afterwards)")
    p.add_argument("--growth-at", type=int, default=GROWTH_AT,
                   help="size of the growth check's smaller log (default 100,000; the check "
                        "runs when --events is larger, and not with --quick)")
    p.add_argument("--pg-events", type=int, default=PG_EVENTS,
                   help="events of the PostgreSQL figures (default 200,000, at most --events; "
                        "they run when TIMELINE_BENCH_POSTGRES_URL is set)")
    p.add_argument("--pg-single", type=int, default=2_000,
                   help="single appends to time on PostgreSQL (default 2,000)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = p.parse_args(argv)
    if a.events is None:
        a.events = 50_000 if a.quick else 1_000_000
    a.samples = a.samples or (5_000 if a.quick else 20_000)
    a.rounds = a.rounds or (2 if a.quick else 3)
    a.cli_runs = a.cli_runs or (5 if a.quick else 7)
    if a.streams < 1 or a.events < 2 * a.streams:
        p.error("need at least two events per stream (--events >= 2 * --streams)")
    a.pg_url = os.environ.get("TIMELINE_BENCH_POSTGRES_URL") or None
    if a.pg_url and min(a.pg_events, a.events) < 2 * a.streams:
        p.error("need at least two events per stream on PostgreSQL (--pg-events >= 2 * "
                "--streams)")
    return a


def run(a) -> dict:
    """Run every figure; return the result dict (also what --json writes)."""
    log = Log(a.quiet)
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    es_version = None if a.skip_reference else ref.eventsourcing_available()
    if a.skip_reference:
        log("eventsourcing reference skipped (--skip-reference): its columns are empty")
    elif es_version is None:
        log("eventsourcing is not importable (pip install -e '.[bench]'): its reference "
            "columns are skipped")
    es_on = es_version is not None
    if a.pg_url:
        from .postgres import check_server

        why = check_server(a.pg_url)
        if why:
            raise SystemExit(f"python -m benchmarks: TIMELINE_BENCH_POSTGRES_URL cannot be used "
                             f"({why})")
    growth_at = a.growth_at if not a.quick and a.events > a.growth_at else None
    e2e_n = min(a.samples, 2_000 if a.quick else 5_000)
    known_n = min(a.samples, 500 if a.quick else 2_000)

    # import every timeline module the parent measures now, so that edits to the working
    # tree during a long run cannot change the code under test half way (child processes
    # import afresh: the code hash is taken again at the end and a change is reported)
    import timeline.surfaces.output, timeline.query.parser, timeline.query.planner  # noqa: F401,E401
    import timeline.projections.reader  # noqa: F401
    import timeline.store.store  # noqa: F401
    code = code_version()
    log(f"timeline code: HEAD {code['head']}{' + local changes' if code['dirty'] else ''}, "
        f"sources {code['timeline_sources_sha256']}")
    # the rows are generated as they are appended (untimed), never held all at once: a
    # 10M-row list would take ~8 GB; the figures that need rows take a short prefix
    hasher, stats = RowsHash(), {}
    prefix = list(islice(generate_rows(a.events, a.streams, a.seed), a.streams + a.single))
    pairs = query_pairs(prefix[:a.streams], a.samples, a.seed + 2)  # every stream opens there

    if a.workdir:
        tmp = Path(a.workdir)
        tmp.mkdir(parents=True, exist_ok=True)
        for old in tmp.glob("*.db*"):
            old.unlink()
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="timeline-bench-")
        tmp = Path(cleanup.name)
    sides = SqliteSides(tmp)
    postgres = None
    try:
        log.phase("batched append")
        append = measure_appends(generate_rows(a.events, a.streams, a.seed, stats), a.events,
                                 sides, es_on, log, growth_at, hasher)
        rows_hash = hasher.hexdigest()
        log(f"  {append['rows']:,} rows, hash {rows_hash[:16]}, {stats}")
        log.phase("single append")
        single = measure_single(prefix, a.streams, sides, es_on,
                                min(a.single, a.events - a.streams), log)
        log.phase("queries")
        queries = measure_queries(sides, pairs, es_on, a.rounds, e2e_n, known_n, a.seed, log,
                                  a.events, (append["growth"] or {}).get("at_rows"))
        log.phase("cli cold start")
        s, d = query_pairs(prefix[:a.streams], 1, a.seed + 4)[0]
        cli = measure_cli(tmp / "ours.db", f"state of {s} as of {d}", a.cli_runs)
        log.phase("rebuild")
        scan = run_child("scan", tmp / "raw.db")
        log(f"  raw scan: {scan['events'] / scan['seconds']:,.0f} ev/s")
        replay = run_child("replay", tmp / "es.db") if es_on else None
        if replay:
            log(f"  eventsourcing replay: {replay['events'] / replay['seconds']:,.0f} ev/s")
        rebuild = run_child("rebuild", tmp / "ours.db")
        log(f"  rebuild: {rebuild['events'] / rebuild['seconds']:,.0f} ev/s, peak RSS "
            f"{rebuild['peak_rss_kb'] / 1024:,.0f} MB")
        # a rebuild writes only the rows that differ: over intact projections it reads and
        # compares; into emptied tables (after a fold-version change) it writes every row
        rebuild_empty = run_child("rebuild-empty", tmp / "ours.db")
        log(f"  rebuild into empty projections: "
            f"{rebuild_empty['events'] / rebuild_empty['seconds']:,.0f} ev/s")
        if a.pg_url:
            log.phase("postgresql")
            postgres = measure_postgres(a.pg_url, a, es_on, log, known_n)
        log.phase("")
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    code_end = code_version()
    if code_end != code:
        code["changed_during_run"] = code_end
        log(f"WARNING: timeline sources changed during the run ({code['timeline_sources_sha256']}"
            f" -> {code_end['timeline_sources_sha256']}): child processes (CLI, rebuild) may "
            f"have run different code")
    result = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:]) if sys.argv[1:]
        else "python -m benchmarks",
        "events": a.events, "streams": a.streams, "quick": a.quick,
        "machine": {**machine(), "load_average_start": load_start},
        "code": code,
        "workload": {"events": a.events, "streams": a.streams, "seed": a.seed,
                     "rows_hash": rows_hash, **stats},
        "append": append, "single": single, "queries": queries, "cli": cli,
        "postgres": postgres,
        "rebuild": {
            "ours_eps": rebuild["events"] / rebuild["seconds"], "ours_seconds": rebuild["seconds"],
            "ours_rss_mb": rebuild["peak_rss_kb"] / 1024,
            "ours_baseline_rss_mb": rebuild["baseline_rss_kb"] / 1024,
            "streams": rebuild.get("streams"),
            "empty_eps": rebuild_empty["events"] / rebuild_empty["seconds"],
            "scan_eps": scan["events"] / scan["seconds"], "scan_rss_mb": scan["peak_rss_kb"] / 1024,
            "es_replay_eps": replay["events"] / replay["seconds"] if replay else None,
            "es_replay_rss_mb": replay["peak_rss_kb"] / 1024 if replay else None,
        },
        "phases": log.phases,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    result["figures"] = figures(result)
    return result


def main(argv: list[str] | None = None) -> int:
    # the generator dates a large log's knowledge up to years ahead (a synthetic calendar):
    # admission refuses knowledge beyond today + 2 days unless the margin is widened
    os.environ.setdefault("TIMELINE_KNOWN_MARGIN_DAYS", "3650")
    a = parse_args(sys.argv[1:] if argv is None else argv)
    result = run(a)
    print(table(result["figures"]))
    if result["machine"]["eventsourcing"] is None or a.skip_reference:
        print("(eventsourcing reference columns skipped)")
    print(f"\n{a.events:,} events / {a.streams:,} streams, rows hash "
          f"{result['workload']['rows_hash'][:16]}; run took {result['wall_seconds']:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    if a.markdown:
        Path(a.markdown).write_text(markdown_report(result))
    return 0
