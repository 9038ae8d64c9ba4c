"""Every sourced end date is a scheduled change (issue 23, item 2).

A suspension, an exclusion window or a truce whose end the sources give ends in the fold on
that day, with the state after it (a suspended control back in force, fees back, exclusions
lapsed), instead of an `*_until` text field the fold cannot read. The first tests ask the
state of each such measure the day before and the day of its end through the CLI, on every
backend; the audit below checks that no seed event keeps a dated end the fold does not
schedule (or that a later event silently replaced the schedule).
"""
from __future__ import annotations

import datetime as dt
import json
import re


import timeline
from timeline.log.loader import load_file

from .backends import backend, make_db  # noqa: F401  (fixtures: every backend)
from .conftest import REPO, run_cli

# measure, day the change applies, state fields the day before, state fields that day
# (None: the field is absent), and the row that gives the end
ENDS = [
    ("cn.export-control.gallium-germanium-antimony.us", "2026-11-28",
     {"status": "suspended", "suspended_until": "2026-11-27"},
     {"status": "in_force", "suspended_until": None, "suspension_scope": None},
     "TF26-F01: 'E 2025-11-09 → 2026-11-27', 'until Nov 27, 2026'"),
    ("cn.export-control.rare-earths-extraterritorial", "2026-11-10",
     {"status": "suspended", "suspended_until": "2026-11-10"},
     {"status": "in_force", "suspended_until": None},
     "timeline-facts.md (gvw.com): Ann. 70/2025 'to 2026-11-10'; TF26-F04"),
    ("us.port-fees.section-301-ships.cn", "2026-11-10",
     {"status": "suspended", "suspended_until": "2026-11-09"},
     {"status": "in_force", "suspended_until": None},
     "TF26-F06: suspended for one year, 'E 2025-11-10 00:01 EST → 2026-11-09'"),
    ("us.tariff.section-301-ships-cranes.cn", "2026-11-10",
     {"status": "suspended", "suspended_until": "2026-11-09"},
     {"status": "in_force", "rate": 100, "suspended_until": None},
     "M21 and TF26-F06"),
    ("us.tariff.section-301.cn", "2026-11-10",
     {"exclusions_until": "2026-11-09"},
     {"exclusions_until": None, "rate": 25},
     "TF26-F07: exclusions 'extended until 11:59 p.m. eastern daylight time on November 9, 2026'"),
    ("us.exemption.section-301-exclusions.cn", "2026-11-10",
     {"status": "in_force"}, {"status": "expired"}, "M06 and TF26-F07"),
    ("us.export-control.affiliates-rule", "2026-11-10",
     {"status": "suspended", "suspended_until": "2026-11-09"},
     {"status": "in_force", "suspended_until": None},
     "TF26-F49: 'automatically reimposes the Affiliates Rule on November 10, 2026'"),
    ("cn.tariff-exclusions.us", "2027-01-01",
     {"exclusions_until": "2026-12-31"}, {"status": "expired", "exclusions_until": None},
     "TF26-F08: 'until December 31, 2026', '→ 2026-12-31'"),
    ("cn.tariff.retaliatory.us", "2026-11-10",
     {"rate": 10, "suspended_points": 24}, {"rate": 34, "suspended_points": 0},
     "timeline-facts.md (srnnews): the 24-point suspension kept 'for one more year'"),
    ("us.tariff.section-122.global", "2026-07-24",
     {"status": "in_force"}, {"status": "expired"},
     "timeline-facts.md: 'through 2026-07-24 00:01 EDT (150 days)'"),
]


def day_before(day: str) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()


def state_of(db: str, measure: str, day: str) -> dict:
    r = run_cli("query", "--db", db, "--format", "json", f"state of {measure} as of {day}")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert len(results) == 1, (measure, day, results)
    return results[0]


def test_each_sourced_end_applies_on_its_day(make_db):
    db = make_db()
    for measure, day, before, after, row in ENDS:
        prior = state_of(db, measure, day_before(day))
        assert any(it["on"] == day for it in prior["state"].get("scheduled", ())), \
            f"{measure}: no change scheduled on {day} ({row}): {prior['state'].get('scheduled')}"
        for key, value in before.items():
            assert prior["state"].get(key) == value, (measure, day_before(day), key, row)
        res = state_of(db, measure, day)
        assert res["since"] == day, (measure, day, res["since"], row)
        for key, value in after.items():
            assert res["state"].get(key) == value, (measure, day, key, row)
        # after the knowledge horizon: a projection, never a fact
        assert res["projected"] is True, (measure, day)


def test_china_export_controls_after_the_horizon_are_of_one_kind(make_db):
    """The issue's question: after every end, no control is left 'suspended' for ever."""
    r = run_cli("query", "--db", make_db(), "--format", "json",
                "state of cn.export-control.* as of 2026-12-01")
    assert r.returncode == 0, r.stderr
    states = {x["measure"]: x for x in json.loads(r.stdout)["results"]}
    for measure in ("cn.export-control.gallium-germanium-antimony.us",
                    "cn.export-control.rare-earths-extraterritorial"):
        assert states[measure]["state"]["status"] == "in_force", measure
        assert states[measure]["projected"] is True, measure
    assert not [m for m, x in states.items() if x["state"].get("status") == "suspended"]


def test_the_returns_are_known_from_the_day_the_suspensions_were(make_db):
    """Known on the day of each suspension, its end was already public: the return is in the
    answer of that knowledge date too."""
    db = make_db()
    for measure, known, day in (
            ("cn.export-control.gallium-germanium-antimony.us", "2025-11-09", "2026-11-28"),
            ("cn.export-control.rare-earths-extraterritorial", "2025-11-07", "2026-11-10"),
            ("us.port-fees.section-301-ships.cn", "2025-11-10", "2026-11-10")):
        r = run_cli("query", "--db", db, "--format", "json",
                    f"state of {measure} as of {day} known on {known}")
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)["results"][0]
        assert (res["state"]["status"], res["since"]) == ("in_force", day), (measure, known)


# --- audit: every dated end in the seeds is scheduled --------------------------------------

# Fields holding an end date as text. `*_until` is the day the sources give with "until" or
# "to" (either the last day in force or the first day without: the rows write both), so the
# change is due on that day or the next; `window_end` is the day the window closes.
END_FIELD = re.compile(r"(_until|^window_end)$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# (stream, field, date) whose end is deliberately not scheduled, each with a comment saying
# why (e.g. a window made moot by a later event that clears the schedule). Empty today: every
# dated end of the seeds is scheduled. Ends the sources give only as words (China's port-fee
# suspension, the 31 entities' "temporary" easing) carry no date field and are not audited.
ALLOWED_UNSCHEDULED: set[tuple[str, str, str]] = set()


def dated_ends() -> list[tuple[str, str, str, str]]:
    """(stream, field, date, file) for every seed event that sets a dated end field."""
    out = []
    for path in sorted((REPO / "seeds").glob("*.toml")):
        for ev in load_file(path):
            for key, value in (ev.payload.get("set") or {}).items():
                if END_FIELD.search(key) and isinstance(value, str) and DATE.match(value):
                    out.append((ev.stream, key, value, path.name))
    return out


def unscheduled_ends(ends, state) -> list[str]:
    """The ends no pending change covers: `state(stream, day)` is the stream's state (or
    None) on `day`; an end D must be pending on D-1 as a change due on D or D+1."""
    missing = []
    for stream, key, value, origin in ends:
        if (stream, key, value) in ALLOWED_UNSCHEDULED:
            continue
        end = dt.date.fromisoformat(value)
        prior = state(stream, (end - dt.timedelta(days=1)).isoformat()) or {}
        due = {it["on"] for it in (prior.get("state") or {}).get("scheduled") or ()}
        if not due & {end.isoformat(), (end + dt.timedelta(days=1)).isoformat()}:
            missing.append(f"{origin}: {stream} {key} = {value} is not scheduled "
                           f"(pending on the day before: {sorted(due) or 'nothing'})")
    return missing


def test_every_dated_end_in_the_seeds_is_scheduled(seeded_db):
    ends = dated_ends()
    # the audit looks at something: the suspensions of the Busan package at least
    assert len({e[0] for e in ends}) >= 8, ends
    with timeline.open(seeded_db, readonly=True) as tl:
        missing = unscheduled_ends(ends, tl.state)
    assert not missing, "\n".join(missing)


def test_the_audit_finds_an_end_that_is_not_scheduled():
    """The audit fails on an end with nothing pending (or something pending elsewhen)."""
    ends = [("x.stream.one", "suspended_until", "2026-11-09", "a.toml"),
            ("x.stream.two", "exclusions_until", "2026-12-31", "b.toml")]
    pending = {"x.stream.two": {"state": {"scheduled": [{"on": "2026-12-15"}]}}}
    missing = unscheduled_ends(ends, lambda stream, day: pending.get(stream))
    assert [m.split(":")[0] for m in missing] == ["a.toml", "b.toml"]


def test_the_allow_list_names_only_ends_that_exist():
    ends = {(s, k, v) for s, k, v, _ in dated_ends()}
    assert ALLOWED_UNSCHEDULED <= ends, ALLOWED_UNSCHEDULED - ends
