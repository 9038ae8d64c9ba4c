"""Sources one click away (issue 23, item 7): every citation of a fact-table row is checked
against that row, not only against the whole table.

The loader (timeline/log/loader.py) already refuses a quote that appears nowhere in the cited
document and a source name that no row of the table gives. This module checks what it
cannot: that one row both names every source of the citation and holds its quote (a quote
from a neighbouring row, or from the other half of a two-part row, is a wrong citation), and
that an event citing a row that gives addresses carries one of them as `source.url`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pytest

from timeline.log.loader import cell_source_names, fold_text, load_file

from .conftest import REPO

SEEDS = REPO / "seeds"
URL = re.compile(r"https?://\S+")
ROW_ID = re.compile(r"^(?:[A-Z]{1,2}\d{2,3}|TF26-F\d{2})$")
# "MOFCOM (F22 URL)", "lawyerfanzhang.com (same URL as F07)", "Wenxuecity (as M07)",
# "Thompson Hine (autos, M44 URL)": the address is given in another row
SAME_AS = re.compile(r"\b([A-Z]\d{2})(?: URL)?\)")
WORD = re.compile(r"[a-z0-9][a-z0-9.&-]{2,}")
NOT_A_NAME = {"the", "same", "url", "via", "repost", "mirror", "contra"}


@dataclass(frozen=True)
class Row:
    """One data row of a fact table."""

    file: str
    line: int
    id: str
    text: str  # folded, the whole row
    quote_cell: str  # folded, the Quote cell ("" where the table has none)
    names: frozenset[str]  # folded, lower case: the whole source names its Source cell gives
    urls: tuple[tuple[str, str], ...]  # (publisher, address), in the cell's order


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _sources(cell: str) -> list[str]:
    """A Source cell's sources: split at `; ` outside parentheses ("Report.az (Reuters; F30
    URL) ; MOFCOM — https://…" is two; an address may hold a `;`)."""
    parts, depth, cur = [], 0, ""
    for i, ch in enumerate(cell):
        depth += (ch == "(") - (ch == ")")
        if ch == ";" and depth <= 0 and cell[i + 1:i + 2] in ("", " "):
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [x.strip() for x in parts + [cur] if x.strip()]


def _publisher(part: str) -> str:
    m = re.match(r'^([^,"(\u201c\u2014]+?)\s*(,|"|\(|\u201c|\u2014|$)', part.strip())
    return fold_text(m.group(1) if m else part).lower()


def _words(text: str) -> set[str]:
    return {w for w in WORD.findall(re.sub(r"\b[A-Z]\d{2}\b", " ", text).lower())
            if w not in NOT_A_NAME and not w.startswith("http")}


@lru_cache(maxsize=8)
def rows(name: str) -> tuple[Row, ...]:
    """Every data row of seeds/reference/NAME with its source names and addresses. An
    address given as another row's ("MOFCOM (F22 URL)", "FR 2024-21217 (elaws, as M07)") is
    that row's address whose source shares a word with the reference ("elaws")."""
    path = SEEDS / "reference" / name
    raw: list[tuple[int, list[str], int, int]] = []
    col = qcol = None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            col = None
            continue
        if set(line) <= set("|-: "):
            continue
        cells = _cells(line)
        if col is None:
            low = [c.lower() for c in cells]
            col = next((i for i, c in enumerate(low) if c.startswith("source")), -1)
            qcol = next((i for i, c in enumerate(low) if c.startswith("quote")), -1)
            continue
        raw.append((n, cells, col, qcol))
    direct: dict[str, list[tuple[str, str]]] = {}  # row id -> (the source's text, address)
    parsed = []
    for n, cells, col, qcol in raw:
        cell = cells[col] if 0 <= col < len(cells) else ""
        rid = cells[0] if ROW_ID.match(cells[0]) else f"line {n}"
        parts = [(part, m.group(0) if (m := URL.search(part)) else None)
                 for part in _sources(cell)]
        direct[rid] = [(part.split(" \u2014 ")[0], u) for part, u in parts if u]
        parsed.append((n, rid, cells, cell, qcol, parts))
    out = []
    for n, rid, cells, cell, qcol, parts in parsed:
        urls = []
        for part, url in parts:
            if url is None and (ref := SAME_AS.search(part)):
                given = direct.get(ref.group(1), [])
                same = [u for text, u in given if _words(part) & _words(text)]
                url = same[0] if same else (given[0][1] if len(given) == 1 else None)
            if url:
                urls.append((_publisher(part), url))
        out.append(Row(name, n, rid, fold_text(" | ".join(cells)),
                       fold_text(cells[qcol]) if 0 <= qcol < len(cells) else "",
                       frozenset(cell_source_names(cell)), tuple(urls)))
    return tuple(out)


def attribution(row: Row, quote: str) -> str | None:
    """Whose words a quote is, where the row's Quote cell says so (`BDO: "On March 6…"`):
    the name before the colon that opens the quoted passage."""
    at = row.quote_cell.find(quote)
    if at < 0:
        return None
    before = row.quote_cell[:at].rstrip(" '")
    if not before.endswith(":"):
        return None
    return before[:-1].rsplit("/", 1)[-1].strip() or None


def _parts(src: dict) -> list[str]:
    return [fold_text(p).lower() for p in str(src["name"]).split(";")]


def _referred(row: Row) -> list[Row]:
    """The rows a row names by id ("S.Mullin, M14 URL"), in its own table."""
    ids = set(re.findall(r"\b([A-Z]\d{2})\b", row.text)) - {row.id}
    return [r for r in rows(row.file) if r.id in ids]


def cited_rows(src: dict) -> list[Row]:
    """The rows a citation cites. With a quote: the rows holding the quote that name its
    first source (the one quoted first), or, for a row with no Source cell (a worked
    example), that name a row giving that source; where the Quote cell says whose words they
    are, those must be the first source's. Without a quote: the rows naming every source,
    else those naming the first."""
    parts = _parts(src)
    table = rows(src["reference"])
    if src.get("quote"):
        quote = fold_text(str(src["quote"]))
        by = _words(parts[0])
        return [r for r in table if quote in r.text and (
            parts[0] in r.names
            or (not r.names and any(parts[0] in x.names for x in _referred(r))))
            and ((who := attribution(r, quote)) is None or _words(who) & by)]
    return ([r for r in table if all(p in r.names for p in parts)]
            or [r for r in table if parts[0] in r.names])


def addresses(src: dict) -> list[str]:
    """The addresses the cited rows give, the first named source's first; for a worked
    example (no Source cell), the first source's address in the rows it names."""
    parts = _parts(src)
    given: list[str] = []
    for r in cited_rows(src):
        if r.names:
            given += [u for u in [row_url(r, src)] if u] + [u for _, u in r.urls]
        else:
            given += [u for x in _referred(r) if parts[0] in x.names
                      for u in [row_url(x, src)] if u]
    return list(dict.fromkeys(given))


def row_url(row: Row, src: dict) -> str | None:
    """The address for a citation of `row`: that of the first named source that has one."""
    for part in str(src["name"]).split(";"):
        pub = _publisher(part)
        for p, url in row.urls:
            if p == pub:
                return url
    return row.urls[0][1] if row.urls else None


def seed_citations() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(SEEDS.glob("*.toml")):
        for i, ev in enumerate(load_file(path)):
            out.append((f"{path.name}[{i}]", ev.source))
    return out


CITATIONS = seed_citations()
REFERENCED = [(where, src) for where, src in CITATIONS if src.get("reference")]


def test_the_tables_are_read():
    """The parser finds the rows and their addresses (else every check below is empty)."""
    f = {r.id: r for r in rows("timeline-facts-2026.md")}
    assert len(f) >= 59 and len(rows("timeline-facts.md")) >= 40
    assert len([r for r in rows("product-scopes.md") if r.urls]) >= 50
    assert ("the business times", "https://www.businesstimes.com.sg/international/"
            "china-suspends-ban-exports-gallium-germanium-antimony-us") in f["F01"].urls
    # an address given as another row's is that row's address for the same publisher
    assert dict(f["F50"].urls)["mofcom"] == dict(f["F22"].urls)["mofcom"]
    assert "report.az" in dict(f["F32"].urls)


def test_every_quote_lies_in_a_row_that_names_its_source():
    wrong = [f"{where}: {src['name']!r} with {str(src.get('quote'))[:60]!r}"
             for where, src in REFERENCED if src.get("quote") and not cited_rows(src)]
    assert not wrong, "no row of the cited table holds the quote and names its source:\n" \
        + "\n".join(wrong)


def test_every_event_citing_a_row_with_addresses_carries_one():
    missing, foreign = [], []
    for where, src in REFERENCED:
        given = addresses(src)
        if src.get("url"):
            if src["url"] not in given:
                foreign.append(f"{where}: {src['url']}")
        elif given:
            missing.append(f"{where}: its row gives {given[0]}")
    assert not missing, "events without their row's address:\n" + "\n".join(missing)
    assert not foreign, "addresses not given by the cited row:\n" + "\n".join(foreign)


def test_every_address_appears_in_the_file_it_is_cited_from():
    text = {p.name: p.read_text(encoding="utf-8") for p in (SEEDS / "reference").glob("*.md")}
    wrong = [f"{where}: {src['url']}" for where, src in REFERENCED
             if src.get("url") and src["url"] not in text[src["reference"]]]
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_a_quote_of_another_source_or_row():
    f48 = {"name": "Squire Patton Boggs; China Governance (Guancha text)",
           "reference": "timeline-facts-2026.md",
           "quote": "The Ministry of Finance (MOF) barred government procurement entities from "
                    "buying goods or services from 46 US companies in covered projects."}
    assert [r.id for r in cited_rows(f48)] == ["F48"]
    assert addresses(f48)[0].startswith("https://www.squirepattonboggs.com/")  # F47's, as F48 says
    # the same quote under another row's publisher is no row's (the loader takes it: the
    # name is in the table and the quote too)
    assert not cited_rows({**f48, "name": "The Business Times"})
    # the quote of F26 is BDO's: cited for Krenz & Hannan first, it is not theirs
    bdo = {"name": "BDO", "reference": "timeline-facts-2026.md",
           "quote": "On March 6, 2026, the U.S. Court of International Trade (CIT) suspended "
                    "its March 4, 2026 order"}
    assert [r.id for r in cited_rows(bdo)] == ["F26"]
    assert not cited_rows({**bdo, "name": "Krenz & Hannan (27 Mar); BDO"})
    # a name as another row writes it: F50 gives "The Straits Times (Reuters; F34 URL)"
    assert not cited_rows({"name": "The Straits Times (Reuters); MOFCOM",
                           "reference": "timeline-facts-2026.md",
                           "quote": "the US Supreme Court has since ruled Trump's emergency "
                                    "tariffs illegal."})
    # a worked example's quote, with its source named in the row the example names
    e02 = {"name": "Sheppard Mullin", "reference": "product-scopes.md",
           "quote": "in addition to the usual 2.5% import duty on cars"}
    assert [r.id for r in cited_rows(e02)] == ["E02"]
    assert addresses(e02) == ["https://natlawreview.com/article/"
                              "skys-limit-yet-more-section-301-tariffs-china"]


@pytest.mark.parametrize("where, check", [
    # the entity listing quotes nothing of the procurement ban
    ("2026-06-22-cn-counter-listing.toml[0]",
     lambda s: "quote" not in s and s["url"].startswith("https://www.squirepattonboggs.com/")),
    # the 27 March order rests on Krenz & Hannan alone; BDO's quote is of the 6 March order
    ("2025-11-01-single-source-confidence.toml[2]",
     lambda s: "quote" not in s and s["name"] == "Krenz & Hannan (27 Mar)"
     and s["url"] == "https://krenzhannanintl.com/?p=365"),
    ("2026-03-27-cit-refunds-finally-liquidated.toml[0]",
     lambda s: "quote" not in s and s["name"] == "Krenz & Hannan (27 Mar)"),
    # the proposal of 2025-11-06 does not quote the notice public on 2025-11-09/10
    ("2025-11-06-us-cn-port-fees-suspension.toml[0]", lambda s: "quote" not in s),
    ("2025-11-06-us-cn-port-fees-suspension.toml[1]", lambda s: "formal notice" in s["quote"]),
    # F50 names "The Straits Times (Reuters; F34 URL)": the source is The Straits Times
    ("2026-02-20-us-side-of-truce-overtaken.toml[0]",
     lambda s: s["name"] == "The Straits Times; MOFCOM"),
    ("2026-02-20-us-side-of-truce-overtaken.toml[1]",
     lambda s: s["name"] == "The Straits Times; MOFCOM"),
])
def test_the_four_wrong_citations_are_fixed(where, check):
    src = dict(CITATIONS)[where]
    assert check(src), src
