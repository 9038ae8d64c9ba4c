"""benchmarks/serve.py runs end to end (a few rounds; its figures are not asserted)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette")


def test_serve_benchmark_runs(tmp_path, capsys):
    from benchmarks import serve

    out = tmp_path / "serve.json"
    assert serve.main(["--rounds", "3", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {f"{k}_p50" for k, _ in serve.LABELS} <= set(res) and res["rounds"] == 3
    assert "/api/query?q=state of X as of D" in capsys.readouterr().out
