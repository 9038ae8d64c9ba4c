"""The benchmark harness keeps working: a tiny run end to end (no timing assertions)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.generate import generate, rows_hash  # noqa: E402
from benchmarks.reference import eventsourcing_available  # noqa: E402

PRIMARY = {"batched_append", "single_append", "as_of_p50", "e2e_p50", "known_on_p50",
           "rebuild", "rebuild_rss", "cli_cold_start", "growth"}
ES_REFERENCED = {"batched_append", "single_append", "as_of_es", "replay_es"}


def test_generation_is_deterministic():
    a, b = generate(2000, 200, seed=7), generate(2000, 200, seed=7)
    assert a.rows_hash() == b.rows_hash() == rows_hash(b.rows)
    assert a.rows == b.rows
    assert generate(2000, 200, seed=8).rows_hash() != a.rows_hash()
    st = a.stats
    assert st["streams_opened"] == 200
    assert 0.03 * 2000 <= st["retroactive"] <= 0.07 * 2000
    assert 0 < st["known_later"] <= 0.03 * 2000
    assert 200 <= st["mean_json_bytes"] <= 400
    # retroactive means: effective before the stream's latest, never before its first
    first, latest, retro = {}, {}, 0
    for r in a.rows:
        if r.stream not in first:
            assert r.type == "imposed" and r.version == 1
            first[r.stream] = latest[r.stream] = r.effective
            continue
        assert r.effective >= first[r.stream]
        if r.effective < latest[r.stream]:
            retro += 1
        latest[r.stream] = max(latest[r.stream], r.effective)
    assert retro == st["retroactive"]


def test_generated_rows_are_valid_events():
    from timeline.log.validation import validate

    from benchmarks.generate import new_events

    for ev in new_events(generate(500, 50, seed=1).rows):
        validate(ev)


def test_harness_runs_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "RESULTS.md"
    cmd = [sys.executable, "-m", "benchmarks", "--events", "2000", "--streams", "200",
           "--single", "200", "--samples", "300", "--rounds", "2", "--growth-at", "1000",
           "--quiet",
           "--json", str(out), "--markdown", str(md)]
    es = eventsourcing_available() is not None
    if not es:
        cmd.append("--skip-reference")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    figs = {f["key"]: f for f in result["figures"]}
    assert PRIMARY <= set(figs)
    for key, f in figs.items():
        assert isinstance(f["ours"], (int, float)) and f["ours"] > 0 and math.isfinite(f["ours"]), key
        if key in ES_REFERENCED and not es:
            continue
        assert f["reference"] > 0, key
        assert f["ratio"] > 0, key
    assert result["workload"]["rows_hash"] == generate(2000, 200).rows_hash()
    assert "figure" in proc.stdout and "batched append" in proc.stdout
    assert "| figure |" in md.read_text()
    if not es:
        assert "skipped" in proc.stdout
