"""Figure 7 alone, across source trees: the CLI's cold start next to the dependency import.

    python -m benchmarks.coldstart [--db FILE] [--rounds N] TREE [TREE ...]

Each round starts `python -c "import sqlalchemy, lark, dateutil"` once and then the CLI of
every TREE (a checkout whose `timeline` package goes first on PYTHONPATH) on the harness's
quick-run query, and two floors no SQLAlchemy-based CLI can go below (`python -c pass`,
`import sqlalchemy` alone), so that the machine's drift hits every side alike; the ratios
are medians of the per-round ratios, in wall time (the harness's measure) and in CPU time
(user + system, which a busy machine disturbs less). The database is the quick run's 50,000
events, built by the first TREE's code when FILE does not exist. Where
PYTHONDONTWRITEBYTECODE is set and a tree has no __pycache__, its modules are compiled at
every start, as in the harness; `python -m compileall TREE/timeline` measures the state of
an installed package instead.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from .generate import DEFAULT_SEED, generate, query_pairs
from .measure import median, now_ns

REFERENCE = [sys.executable, "-c", "import sqlalchemy, lark, dateutil"]
# what no CLI built on SQLAlchemy can go below: the interpreter, and SQLAlchemy's own import
FLOORS = {"interpreter alone": [sys.executable, "-c", "pass"],
          "import sqlalchemy alone": [sys.executable, "-c", "import sqlalchemy"]}
CLI = "import sys; from timeline.surfaces.cli import main; sys.exit(main())"


def _build(db: Path, tree: str) -> None:
    # in a child, so that the database is built by the first tree's code, not this one's
    code = ("import sys; from benchmarks.sides import ours_create; "
            "from benchmarks.generate import batches, generate, new_events; "
            "s = ours_create(__import__('pathlib').Path(sys.argv[1])); "
            "[s.append(new_events(b)) for b in batches(generate(50_000, 10_000).rows, 10_000)]; "
            "s.close()")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tree, str(Path(__file__).parent.parent)])}
    subprocess.run([sys.executable, "-c", code, str(db)], env=env, check=True, cwd=tree)


def _cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def once(cmd: list[str], env: dict, cwd: str) -> tuple[float, float, bytes]:
    """(wall ms, CPU ms, stdout) of one run of `cmd`; fails loudly if it fails."""
    cpu, t0 = _cpu_s(), now_ns()
    # run in `cwd`: `python -c` puts the working directory ahead of PYTHONPATH
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall, cpu = (now_ns() - t0) / 1e6, (_cpu_s() - cpu) * 1000
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr.decode()}")
    return wall, cpu, p.stdout


def main(argv: list[str] | None = None) -> int:
    """Measure and print one line per tree."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.coldstart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs="+", metavar="TREE")
    p.add_argument("--db", type=Path, default=Path("coldstart.db"))
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args(argv)
    a.db, a.trees = a.db.resolve(), [str(Path(t).resolve()) for t in a.trees]
    if not a.db.exists():
        _build(a.db, a.trees[0])
    stream, day = query_pairs(generate(50_000, 10_000, DEFAULT_SEED).rows, 1, DEFAULT_SEED + 4)[0]
    cmd = [sys.executable, "-c", CLI, "query", f"state of {stream} as of {day}", "--format",
           "json", "--db", str(a.db)]
    envs = {t: {**os.environ, "PYTHONPATH": t} for t in a.trees}
    answers = {once(cmd, envs[t], t)[2] for t in a.trees}  # warm-up; the trees must agree
    if len(answers) != 1:
        raise SystemExit("the trees answer the query differently")
    base, nowhere = dict(os.environ), tempfile.gettempdir()
    once(REFERENCE, base, nowhere)
    ref, ours = [], {t: [] for t in a.trees}
    floors: dict[str, list] = {name: [] for name in FLOORS}
    for _ in range(a.rounds):
        ref.append(once(REFERENCE, base, nowhere)[:2])
        for name, floor in FLOORS.items():
            floors[name].append(once(floor, base, nowhere)[:2])
        for t in a.trees:
            ours[t].append(once(cmd, envs[t], t)[:2])
    print(f"imports: wall {median(w for w, _ in ref):.0f} ms, cpu {median(c for _, c in ref):.0f}"
          f" ms; {a.rounds} rounds; load {os.getloadavg()[0]:.1f}")
    for t, runs in [*floors.items(), *ours.items()]:
        wall = median(w / r[0] for (w, _), r in zip(runs, ref))
        cpu = median(c / r[1] for (_, c), r in zip(runs, ref))
        print(f"{t}: wall {median(w for w, _ in runs):.0f} ms, ratio {wall:.3f}; "
              f"cpu {median(c for _, c in runs):.0f} ms, ratio {cpu:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
