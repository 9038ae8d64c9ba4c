"""`timeline serve` in process (issue 26's figure): the JSON API and the pages.

    python -m benchmarks.serve [--rounds R] [--quick] [--json OUT]

A database of the bundled seeds, opened read-only as `timeline serve` opens it; the app
(`make_app`) is called as an ASGI application directly, on one event loop, the way uvicorn
calls it, without a socket: each request goes through the method and header guard,
Starlette's routing, the threadpool that runs the handler, the read and the reply.

    /api/query?q=state of X as of D       (target: p50 <= 2 ms)
    /ask?q=state of X as of D             the same answer as an HTML page
    /product?p=G&on=D                     a good's layers and its chart
    /measure?id=X                         history, chart, events and sources
    /?date=D                              the briefing (target for a page: p50 <= 50 ms)

X, D and G are drawn at random (measures of the log, days 2018-2026, the headline groups).
Reported: p50 and p99 in milliseconds; the first tenth of the rounds is warm-up and left out.
No timing is asserted anywhere: this prints figures.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

GROUPS = ("smartphones", "computers", "chips", "steel", "evs", "solar-cells", "furniture",
          "apparel")


def _percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


async def call(app, path: str) -> tuple[int, bytes]:
    """One GET through the ASGI app: (status, body)."""
    raw_path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": raw_path,
             "raw_path": raw_path.encode(), "query_string": query.encode(),
             "root_path": "", "headers": [(b"host", b"127.0.0.1:8765")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8765)}
    status, body = 0, []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))
    await app(scope, receive, send)
    return status, b"".join(body)


def requests(rounds: int, measures: list[str], seed: int = 13) -> dict[str, list[str]]:
    """The URLs of each figure, drawn at random."""
    rng = random.Random(seed)
    start = dt.date(2018, 1, 1)

    def day() -> str:
        return (start + dt.timedelta(days=rng.randrange(3200))).isoformat()
    out: dict[str, list[str]] = {k: [] for k in ("api", "ask", "product", "measure", "home")}
    for _ in range(rounds):
        q = quote(f"state of {rng.choice(measures)} as of {day()}")
        out["api"].append(f"/api/query?q={q}")
        out["ask"].append(f"/ask?q={q}")
        out["product"].append(f"/product?p={rng.choice(GROUPS)}&on={day()}")
        out["measure"].append(f"/measure?id={rng.choice(measures)}")
        out["home"].append(f"/?date={day()}")
    return out


def measure(db: Path, rounds: int) -> dict:
    """Alternate the five requests round by round; latencies in milliseconds."""
    import timeline
    from timeline.surfaces.serve.app import make_app

    with timeline.open(str(db), readonly=True, timeout=30) as tl:
        app = make_app(tl, trusted_hosts=["127.0.0.1"])
        measures = [m for m in tl.query("measures").data["results"]]
        urls = requests(rounds, [m["measure"] for m in measures])
        times: dict[str, list[float]] = {k: [] for k in urls}

        async def run():
            for i in range(rounds):
                for key, paths in urls.items():
                    t0 = time.perf_counter_ns()
                    status, _ = await call(app, paths[i])
                    times[key].append((time.perf_counter_ns() - t0) / 1e6)
                    assert status == 200, (paths[i], status)
        asyncio.run(run())
    res = {}
    for key, xs in times.items():
        xs = xs[max(1, len(xs) // 10):]
        res[f"{key}_p50"] = _percentile(xs, 0.5)
        res[f"{key}_p99"] = _percentile(xs, 0.99)
    return res


LABELS = (("api", "/api/query?q=state of X as of D"), ("ask", "/ask?q=state of X as of D"),
          ("product", "/product?p=G&on=D"), ("measure", "/measure?id=X"),
          ("home", "/?date=D (the briefing)"))


def main(argv: list[str] | None = None) -> int:
    """Build the database, measure, print one table."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    p.add_argument("--rounds", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="30 rounds")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds = 30
    from timeline.store.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "serve.db"
        Store.create(f"sqlite:///{db}").close()
        res = measure(db, args.rounds)
    res["rounds"] = args.rounds
    print(f"timeline serve in process (ASGI, no socket), bundled seeds; {args.rounds} rounds")
    print(f"{'request':<40} {'p50 ms':>8} {'p99 ms':>8}")
    for key, label in LABELS:
        print(f"{label:<40} {res[key + '_p50']:>8.2f} {res[key + '_p99']:>8.2f}")
    print(f"targets: /api/query p50 <= 2 ms ({'met' if res['api_p50'] <= 2 else 'NOT met'}); "
          f"a page p50 <= 50 ms (slowest page p50 "
          f"{max(res[k + '_p50'] for k in ('ask', 'product', 'measure', 'home')):.1f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
