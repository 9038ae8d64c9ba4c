"""The timeline of record: every seed event cites its source, every quote verifies, and the
catalogue holds the measures the product promises."""
from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from timeline.log.loader import expand, fold_text, load_paths
from timeline.resources import seeds_path

SEEDS = seeds_path()
FILES = [p for p in expand([SEEDS]) if p.suffix == ".toml"]
EVENTS = [(p, e) for p in FILES for e in tomllib.loads(p.read_text("utf-8"))["events"]]

REQUIRED = """
us.tariff.ieepa-fentanyl.cn us.tariff.ieepa-reciprocal.cn us.tariff.section-301.cn
us.tariff.section-232.steel-aluminum us.tariff.section-122.global cn.tariff.retaliatory.us
cn.tariff.energy-autos.us cn.tariff.agriculture.us us.export-control.advanced-computing.cn
us.export-control.nvidia-h20.cn us.export-control.eda-software.cn
us.export-control.jet-engines.cn us.export-control.ethane.cn us.export-control.huawei-ascend
us.visa.chinese-students cn.export-control.rare-earths
cn.export-control.gallium-germanium-antimony.us cn.export-control.rare-earths-extraterritorial
agreement.us-cn.geneva diplomacy.us-cn case.ieepa-tariffs indicator.cn.exports-to-us.yoy
""".split()


def test_there_are_seed_files_sorted_by_date():
    assert len(FILES) >= 40
    names = [p.name for p in FILES]
    assert names == sorted(names)
    assert all(n[:10].count("-") == 2 for n in names)


@pytest.mark.parametrize("path,event", EVENTS, ids=[f"{p.name}:{e['stream']}" for p, e in EVENTS])
def test_every_event_cites_a_source_that_verifies(path, event):
    src = event["source"]
    assert src.get("name", "").strip()
    assert src.get("file") or src.get("reference"), "cite a seed article or the facts table"
    if src.get("file"):
        text = (SEEDS / src["file"]).read_text("utf-8")
        assert len(src["quote"]) >= 20
        assert fold_text(src["quote"]) in fold_text(text)
    if src.get("reference"):
        facts = fold_text((SEEDS / "reference" / src["reference"]).read_text("utf-8"))
        for part in src["name"].split(";"):
            assert fold_text(part) in facts


def test_source_articles_are_unchanged_copies():
    """The five articles match the checksums recorded when they were copied from
    shared/seeds; where shared/ is beside the checkout, they also equal the originals."""
    sums = (SEEDS / "sources" / "SHA256SUMS").read_text("utf-8").split("\n")
    recorded = dict(reversed(line.split("  ", 1)) for line in sums if line.strip())
    on_disk = sorted(p.name for p in (SEEDS / "sources").glob("*.txt"))
    assert sorted(recorded) == on_disk and len(on_disk) == 5
    for name, digest in recorded.items():
        assert hashlib.sha256((SEEDS / "sources" / name).read_bytes()).hexdigest() == digest
    shared = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    for original in shared.glob("*.txt"):  # nothing to compare when shared/ is not there
        assert (SEEDS / "sources" / original.name).read_bytes() == original.read_bytes()


def test_damaged_file_is_documented_and_its_quotes_verify():
    readme = (SEEDS / "sources" / "README.md").read_text("utf-8")
    assert "001_038c8aee787f03d7.txt" in readme and "\u0e42" in readme
    damaged = (SEEDS / "sources" / "001_038c8aee787f03d7.txt").read_text("utf-8")
    assert "\u0e42" in damaged
    # a quote typed with proper typography still matches the damaged text
    assert fold_text("China\u2019s Vice Premier He Lifeng") in fold_text(damaged)
    cited = [e for _, e in EVENTS
             if e["source"].get("file", "").endswith("001_038c8aee787f03d7.txt")]
    assert cited, "some event cites the damaged article"


def test_catalogue_holds_the_required_measures(seeded_store):

    with seeded_store.reading() as c:
        streams = set(c.all_streams())
    assert set(REQUIRED) <= streams
    assert any(s.startswith("indicator.cn.") for s in streams - set(REQUIRED))


def test_reloading_every_seed_appends_nothing(seeded_store):
    before = seeded_store.head()
    res = seeded_store.append(load_paths([SEEDS]))
    assert res.appended == [] and res.skipped == len(EVENTS)
    assert seeded_store.head() == before


def test_disagreements_are_recorded_not_resolved():
    disputed = {e["stream"] for _, e in EVENTS if e.get("disputed")}
    assert "us.tariff.section-122.global" in disputed
    assert any("rare-earth" in s for s in disputed)
    for _, e in EVENTS:
        if e.get("disputed"):
            assert e.get("note"), "a disputed report says why"


def test_court_rulings_name_the_measures_they_affect():
    rulings = [e for _, e in EVENTS
               if e["stream"] == "case.ieepa-tariffs" and e["type"] == "ruling"]
    statuses = {e["effective"].isoformat(): e["affects_set"]["legal_status"]
                for e in rulings if "affects_set" in e}
    assert statuses["2025-05-28"] == "ruled_unlawful"
    assert statuses["2025-05-29"] == "stayed"
    assert statuses["2026-02-20"] == "invalidated"
