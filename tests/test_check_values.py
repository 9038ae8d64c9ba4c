"""`check_values`, made faster for the append path (issue 15), refuses exactly what the
original did, at the same path with the same message: compared on generated documents."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timeline.log.validation import (INT64, MAX_DEPTH, MAX_ITEMS, MAX_PROSE, PROSE_FIELDS,
                                     Invalid, check_values)
# the original check of one text, unchanged: the speed-up is in screening texts before it
from timeline.log.validation import _check_text_closely as _text


def reference(doc, path="", depth=0, prose=False):
    """The original definition, kept verbatim as the specification."""
    if depth > MAX_DEPTH:
        raise Invalid(path, None, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(doc, bool) or doc is None:
        return
    if isinstance(doc, float):
        if not math.isfinite(doc):
            raise Invalid(path, doc, "must be a finite number (not NaN or infinity)")
    elif isinstance(doc, int):
        if not INT64[0] <= doc <= INT64[1]:
            raise Invalid(path, doc, "is an integer beyond 64 bits")
    elif isinstance(doc, str):
        _text(doc, path, prose)
    elif isinstance(doc, Mapping):
        if len(doc) > MAX_ITEMS:
            raise Invalid(path, None, f"has more than {MAX_ITEMS} keys")
        for k, v in doc.items():
            if not isinstance(k, str):
                raise Invalid(path, k, "keys must be text")
            _text(k, f"{path}.{k}" if path else k, False)
            reference(v, f"{path}.{k}" if path else k, depth + 1, k in PROSE_FIELDS)
    elif isinstance(doc, (list, tuple)):
        if len(doc) > MAX_ITEMS * 100:
            raise Invalid(path, None, f"has more than {MAX_ITEMS * 100} entries")
        for i, v in enumerate(doc):
            reference(v, f"{path}[{i}]", depth + 1, prose)


def outcome(fn, doc):
    try:
        fn(doc)
    except Invalid as exc:
        return exc.describe()
    return None


text = st.text(alphabet=st.sampled_from(["a", "b", " ", "\n", "\t", "\x00", "\x7f", "\ud800",
                                         "é", "\x1f"]), max_size=6)
keys = st.sampled_from(["a", "note", "quote", "set", "x\ny", "k\ud800"]) | text
leaves = (st.none() | st.booleans() | st.integers(-(2 ** 65), 2 ** 65)
          | st.floats(allow_nan=True, allow_infinity=True) | text
          | st.sampled_from(["x" * (MAX_PROSE + 1), "n\n" * 10]))
docs = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                    | st.lists(inner, max_size=3).map(tuple)
                    | st.dictionaries(keys, inner, max_size=3)
                    | st.dictionaries(st.integers(0, 3), inner, max_size=2), max_leaves=25)


def _deep(n):
    doc = "leaf"
    for i in range(n):
        doc = {"k": doc} if i % 2 else [doc]
    return doc


@pytest.mark.slow
@settings(max_examples=1500 if os.environ.get("TIMELINE_LONG_TESTS") == "1" else 500,
          deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs)
def test_check_values_refuses_what_the_original_refused(doc):
    assert outcome(check_values, doc) == outcome(reference, doc)


def test_depth_limits_are_where_they_were():
    for n in range(MAX_DEPTH - 1, MAX_DEPTH + 3):
        for doc in (_deep(n), {"a": _deep(n)}, {"a": {"b": None} if n > MAX_DEPTH else 1}):
            assert outcome(check_values, doc) == outcome(reference, doc)
    assert outcome(check_values, _deep(MAX_DEPTH + 2)) is not None
