"""REPL completion and highlighting: the pure engine, the prompt_toolkit Completer, the lexer."""
from __future__ import annotations

import re

import pytest

from tests.conftest import snapshot_of
from timeline.surfaces.completion import (META_ARGS, Catalogue, load_catalogue, make_completer,
                                 partial_word, suggest)
from timeline.surfaces.lexer import query_keywords, tokens
from timeline.resources import grammar_path


@pytest.fixture
def cat(seeded_store) -> Catalogue:
    with snapshot_of(seeded_store) as s:
        return load_catalogue(s)


def test_catalogue_reads_measures_views_and_jurisdictions(cat, seeded_store):
    with seeded_store.reading() as conn:
        n = conn.conn.exec_driver_sql("SELECT COUNT(*) FROM measures").scalar_one()
    assert len(cat.measures) == n and "us.tariff.ieepa-fentanyl.cn" in cat.measures
    assert {"v_events", "v_measures", "v_intervals", "v_state_today"} <= set(cat.tables)
    assert "source_quote" in cat.tables["v_events"]
    assert {"us", "cn"} <= set(cat.jurisdictions)
    assert cat.titles["us.tariff.ieepa-fentanyl.cn"]


def test_statement_start_offers_every_query_kind(cat):
    assert suggest("", cat) == ["state", "history", "events", "diff", "total", "tariff",
                                "products", "measures", "first", "learned", "explain"]
    assert suggest("hi", cat) == ["history"]
    assert suggest("explain ", cat)[:3] == ["state", "history", "events"]


def test_keywords_follow_the_grammar(cat):
    assert suggest("state ", cat) == ["of"]
    assert suggest("state of us.tariff.section-301.cn ", cat) == ["as", "known", "where"]
    assert suggest("state of us.tariff.section-301.cn as ", cat) == ["of"]
    assert suggest("history of x.y from 2025-01-01 ", cat) == ["to", "known", "where", "order",
                                                           "limit"]
    assert suggest("total tariff by us on cn ", cat) == ["as", "known", "where"]
    assert suggest("history of x.y from today + 1 m", cat) == ["month", "months"]


def test_measure_ids_by_prefix_by_part_and_as_globs(cat):
    got = suggest("state of us.tariff.ie", cat)
    assert got == ["us.tariff.ieepa-fentanyl.cn", "us.tariff.ieepa-reciprocal.cn"]
    assert "us.tariff.ieepa-fentanyl.cn" in suggest("state of fentanyl", cat)
    assert suggest("history of us.t", cat)[0] == "us.tariff.*"
    assert "cn.tariff.retaliatory.us" in suggest("events for cn.", cat)
    assert "us.tariff.ieepa-fentanyl.cn" in suggest("diff us.tariff.ie", cat)


def test_fields_operators_and_values(cat):
    assert {"type", "effective", "source", "rate", "status"} <= set(suggest("events where ",
                                                                           cat))
    assert "first_effective" in suggest("measures where ", cat)
    assert "first_effective" not in suggest("events where ", cat)
    assert suggest("events where st", cat) == ["status", "stream"]
    ops = ["=", "!=", "<", "<=", ">", ">=", "contains"]
    # a bare field is a condition of its own (`where scheduled`): the operators come first,
    # then what may follow a whole condition
    got = suggest("events where rate ", cat)
    assert got[:7] == ops and set(got[7:]) == {"and", "or", "order", "limit"}
    assert suggest("events where status = ", cat) == ["announced", "threatened", "in_force",
                                                      "suspended",
                                                      "lifted", "expired", "withdrawn"]
    assert suggest("events where type = imp", cat) == ["imposed"]
    assert suggest("measures where kind = tariff and ki", cat) == ["kind"]


def test_dates_and_jurisdictions(cat):
    assert suggest("state of x.y as of ", cat) == ["today", "yesterday", "last week",
                                                   "last month"]
    assert suggest("state of x.y as of ye", cat) == ["yesterday"]
    assert suggest("total tariff by ", cat) == ["all", "cn", "us"]
    assert suggest("total tariff by us on c", cat) == ["cn"]


def test_only_the_current_statement_counts(cat):
    assert suggest("measures; hist", cat) == ["history"]
    assert suggest('events where title = "a;b" and ty', cat) == ["type"]


def test_invalid_prefix_gives_nothing(cat):
    assert suggest("stat of ", cat) == []
    assert suggest('state of "unterminated ', cat) == []


def test_meta_commands_and_their_arguments(cat):
    assert suggest("\\", cat)[:3] == ["\\help", "\\measures", "\\format"]
    assert suggest("\\fo", cat) == ["\\format"]
    assert suggest("\\format ", cat) == ["table", "json", "csv"]
    assert suggest("\\timing o", cat) == ["on", "off"]
    assert suggest("\\asof ", cat) == ["today", "off"]
    assert "state" in suggest("\\help ", cat)
    assert suggest("\\measures us.tariff.ieepa-f", cat) == ["us.tariff.ieepa-fentanyl.cn"]
    assert suggest("\\explain total tariff by ", cat) == ["all", "cn", "us"]
    assert "v_intervals" in suggest("\\sql SELECT * FROM v_", cat)


def test_meta_table_matches_the_repl_commands():
    from timeline.surfaces.repl import ALIASES, META

    assert set(META) | {"q"} == set(META_ARGS)
    assert ALIASES["q"] == "quit"


def test_sql_mode(cat):
    assert suggest("", cat, "sql") == ["SELECT", "WITH", "PRAGMA"]
    assert suggest("sel", cat, "sql") == ["select"]
    assert suggest("SELECT * FROM ", cat, "sql")[:6] == ["v_events", "v_intervals",
                                                          "v_measures", "v_product_layers",
                                                          "v_product_scopes", "v_state_today"]
    got = suggest("SELECT * FROM v_intervals WHERE val", cat, "sql")
    assert got == ["valid_from", "valid_to"]
    assert suggest("SELECT v_measures.fi", cat, "sql") == ["v_measures.first_effective"]
    assert "source_quote" in suggest("SELECT source_q", cat, "sql")
    assert suggest("\\q", cat, "sql") == ["\\quit"]


def test_partial_word():
    assert partial_word("state of us.tariff.ie") == "us.tariff.ie"
    assert partial_word("state of ") == ""
    assert partial_word("\\fo") == "\\fo"
    assert partial_word("\\sql SELECT v_events.po") == "v_events.po"
    assert partial_word("SELECT a FROM b WHERE x.y", "sql") == "x.y"


def test_completer_on_a_document(cat):
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    completer = make_completer(lambda: cat, lambda: "query")
    text = "state of us.tariff.ie"
    got = list(completer.get_completions(Document(text, len(text)), CompleteEvent()))
    assert [c.text for c in got] == ["us.tariff.ieepa-fentanyl.cn",
                                     "us.tariff.ieepa-reciprocal.cn"]
    assert all(c.start_position == -len("us.tariff.ie") for c in got)
    assert got[0].display_meta_text  # the measure's title

    # the cursor in the middle of the text: only what is before it counts
    text = "state of us.tariff.ie as of 2025-04-10"
    doc = Document(text, len("state of us.tariff.ie"))
    assert [c.text for c in completer.get_completions(doc, CompleteEvent())][0] == \
        "us.tariff.ieepa-fentanyl.cn"

    sql = make_completer(lambda: cat, lambda: "sql")
    doc = Document("SELECT * FROM v_st", 18)
    got = list(sql.get_completions(doc, CompleteEvent()))
    assert [(c.text, c.start_position) for c in got] == [("v_state_today", -4)]


def test_lexer_keywords_are_the_grammars():
    words = set(re.findall(r'"([A-Za-z]+)"i', grammar_path().read_text(encoding="utf-8")))
    assert query_keywords() == {w.lower() for w in words}
    assert {"state", "history", "known", "contains", "today"} <= query_keywords()


@pytest.mark.parametrize("line, mode", [
    ('state of us.tariff.* as of "May 14, 2025" known on today - 2 weeks;', "query"),
    ("events where rate >= 10.5 and title contains 'x' limit 3", "query"),
    ("\\explain total tariff by us on cn", "query"),
    ("SELECT \"a\", 'it''s' FROM v_events -- note", "sql"),
    ('unterminated "string', "query"),
])
def test_lexer_tokens_cover_the_line(line, mode):
    assert "".join(text for _, text in tokens(line, mode)) == line


def test_lexer_classes():
    got = dict((text, style) for style, text in
               tokens("state of us.tariff.* as of 2025-05-14 known on today;"))
    assert got["state"] == got["of"] == got["known"] == "class:keyword"
    assert got["us.tariff.*"] == "class:measure"
    assert got["2025-05-14"] == got["today"] == "class:date"
    got = dict((text, style) for style, text in tokens("\\sql SELECT rate FROM v_intervals"))
    assert got["\\sql"] == "class:meta"
    assert got["SELECT"] == got["FROM"] == "class:keyword"
    assert got["rate"] == "class:name"
    got = dict((text, style) for style, text in tokens("select 'x' -- c", "sql"))
    assert got["'x'"] == "class:string" and got["-- c"] == "class:comment"


def test_where_on_state_offers_measure_fields_and_boolean_words(cat):
    fields = suggest("state of us.tariff.* where ", cat)
    assert "rate" in fields and "first_effective" in fields and "not" in fields
    assert "type" not in fields  # an event column, not a state field
    assert {"and", "or"} <= set(suggest("total tariff by us on cn where rate > 20 ", cat))
