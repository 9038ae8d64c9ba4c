"""Product-level answers against the plain state lookup, in one run (issue 22's figure).

    python -m benchmarks.products [--measures N] [--lines L] [--exemptions E] [--rounds R]
                                  [--quick] [--json OUT]

A database of the bundled seeds gets a generated workload of product scopes: N tariff
measures on goods of China, each naming L HTS lines at their own rates and amended a few
times (some amendments known later than they take effect), E exemptions naming lines of
those measures, and product groups. Then, on one open Reader, rounds alternate the two
queries end to end (parse, plan, run, JSON), on the same random (code, day) pairs:

    state of <a generated measure> as of D            (the reference: today's figure)
    tariff on hts <code> from cn as of D              (the product answer)
    … and each with `known on K`.

Reported: the medians (p50) and p99 of each in microseconds, and the ratio of the medians
(the target is at most 2x). No timing is asserted anywhere: this prints figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

SOURCE = {"name": "benchmark", "reference": "generated"}
START = dt.date(2018, 1, 1)


def _code(rng: random.Random) -> str:
    return f"{rng.randint(1, 97):02d}{rng.randint(1, 99):02d}.{rng.randint(0, 99):02d}"


def workload(measures: int, lines: int, exemptions: int, seed: int = 7):
    """The generated events (NewEvent) and the codes they name."""
    from timeline.log.events import NewEvent

    rng = random.Random(seed)
    events, codes = [], []
    for k in range(measures):
        stream = f"us.tariff.bench-{k:04d}.cn"
        mine = sorted({_code(rng) for _ in range(lines)})
        codes += mine
        day = START + dt.timedelta(days=rng.randint(0, 2000))
        rates = {c: float(rng.choice([7.5, 10, 25, 50, 100])) for c in mine}
        events.append(NewEvent(stream, "imposed", day, {
            "title": f"generated measure {k}",
            "set": {"kind": "tariff", "imposer": "us", "target": "cn", "rate": 25,
                    "hts_rates": rates, "scope": "listed goods"}}, SOURCE, known=day))
        for n in range(3):
            later = day + dt.timedelta(days=rng.randint(30, 900) * (n + 1))
            known = later - dt.timedelta(days=rng.randint(-40, 60))
            rates = {c: float(rng.choice([0, 7.5, 25, 50, 100])) for c in mine}
            events.append(NewEvent(stream, "amended", later, {
                "title": f"generated change {k}.{n}", "set": {"hts_rates": rates}},
                SOURCE, known=known))
    for k in range(exemptions):
        stream = f"us.exemption.bench-{k:04d}.cn"
        day = START + dt.timedelta(days=rng.randint(0, 2500))
        target = f"us.tariff.bench-{rng.randrange(measures):04d}.cn"
        events.append(NewEvent(stream, "imposed", day, {
            "title": f"generated exemption {k}",
            "set": {"kind": "exemption", "imposer": "us", "target": "cn", "exempts": target,
                    "hts": rng.sample(codes, min(20, len(codes)))}}, SOURCE, known=day))
    return events, codes


def _percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def measure(db: Path, codes: list[str], measures: int, rounds: int, seed: int = 11) -> dict:
    """Alternate the two queries on one read snapshot; latencies in microseconds."""
    import timeline
    from timeline.surfaces.output import render

    rng = random.Random(seed)
    days = [(START + dt.timedelta(days=rng.randint(0, 3200))).isoformat()
            for _ in range(rounds)]
    ks = [(START + dt.timedelta(days=rng.randint(0, 3200))).isoformat() for _ in range(rounds)]
    picks = [rng.choice(codes) for _ in range(rounds)]
    names = [f"us.tariff.bench-{rng.randrange(measures):04d}.cn" for _ in range(rounds)]
    out: dict[str, list[float]] = {k: [] for k in ("state", "tariff", "state_known",
                                                   "tariff_known")}
    with timeline.open(str(db), readonly=True) as tl, tl.snapshot() as snap:
        def e2e(text):
            t0 = time.perf_counter_ns()
            render(snap.query(text).answer, "json")
            return (time.perf_counter_ns() - t0) / 1000
        for i in range(rounds):
            d, k, c, s = days[i], ks[i], picks[i], names[i]
            out["state"].append(e2e(f"state of {s} as of {d}"))
            out["tariff"].append(e2e(f"tariff on hts {c} from cn as of {d}"))
            out["state_known"].append(e2e(f"state of {s} as of {d} known on {k}"))
            out["tariff_known"].append(e2e(f"tariff on hts {c} from cn as of {d} known on {k}"))
    res = {}
    for key, xs in out.items():
        xs = xs[max(1, len(xs) // 10):]  # the first rounds warm caches
        res[f"{key}_p50"] = _percentile(xs, 0.5)
        res[f"{key}_p99"] = _percentile(xs, 0.99)
    res["ratio"] = res["tariff_p50"] / res["state_p50"]
    res["ratio_known"] = res["tariff_known_p50"] / res["state_known_p50"]
    return res


def main(argv: list[str] | None = None) -> int:
    """Build the workload, measure, print one table."""
    # the generated amendments run to about 2030: a synthetic log, admitted as a rehearsal
    # dated in the future is (the same workload as the figures already in RESULTS.md)
    os.environ.setdefault("TIMELINE_KNOWN_MARGIN_DAYS", "3650")
    p = argparse.ArgumentParser(prog="python -m benchmarks.products")
    p.add_argument("--measures", type=int, default=200)
    p.add_argument("--lines", type=int, default=50)
    p.add_argument("--exemptions", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="20 measures, 200 rounds")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if args.quick:
        args.measures, args.lines, args.exemptions, args.rounds = 20, 20, 5, 200
    import timeline
    from timeline.store.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "products.db"
        Store.create(f"sqlite:///{db}").close()
        events, codes = workload(args.measures, args.lines, args.exemptions)
        with timeline.open(str(db)) as tl:
            tl.append(events)
        res = measure(db, codes, args.measures, args.rounds)
    res.update(measures=args.measures, lines=args.lines, exemptions=args.exemptions,
               rounds=args.rounds, events=len(events))
    print(f"product workload: {args.measures} measures x {args.lines} lines, "
          f"{args.exemptions} exemptions ({len(events)} events on top of the seeds); "
          f"{args.rounds} rounds, alternated")
    print(f"{'figure':<40} {'p50 us':>9} {'p99 us':>9}")
    for key, label in (("state", "state of X as of D (reference)"),
                       ("tariff", "tariff on hts C from cn as of D"),
                       ("state_known", "state of X as of D known on K"),
                       ("tariff_known", "tariff on hts C … known on K")):
        print(f"{label:<40} {res[key + '_p50']:>9.1f} {res[key + '_p99']:>9.1f}")
    print(f"ratio of medians: as of {res['ratio']:.2f}x, known on {res['ratio_known']:.2f}x "
          f"(target <= 2x)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
