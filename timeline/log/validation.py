"""The declared event schema: the one source of the rules for event files and stored payloads.

What an event file may hold is declared once, below, as msgspec structs; `timeline schema`
prints it as JSON Schema and docs/event-format.md's field tables are generated from it (a
test keeps them equal). Validation is a check only: what is stored is the file's own
values, so hashes and content ids do not depend on this module.

Layers of checking, in order:
1. `check_values`: anywhere in a document, no non-finite number, no integer beyond 64 bits,
   no lone surrogate, no control character outside prose, no nesting past MAX_DEPTH;
2. the structs: types, enumerations, ranges, lengths, unknown keys refused;
3. `check_rules`: what a struct cannot say (schedule after effective, affects with
   affects_set, supersedes only on retractions and corrections, …).
msgspec was chosen over pydantic v2 by measurement: 2.0 vs 19.4 µs per seed event, and the
error path it gives, plus the offending value looked up here, is what a user needs.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Mapping  # typing.Mapping's isinstance is several times slower
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from timeline.errors import EventValidationError
from timeline.log.events import (CheckedEvent, NewEvent, canonical_json, content_id, reject,
                                 reject_at)
from timeline.log.vocabulary import (CONFIDENCES, EVENT_TYPES, KINDS, LEGAL_STATUSES, PRECISIONS,
                                     STATUSES, SUPERSEDING_TYPES)

MAX_DEPTH = 8            # tables and arrays inside an event
MAX_TEXT = 2_000         # characters of a one-line text field
MAX_PROSE = 20_000       # characters of a note or a quote
MAX_TITLE = 300
MAX_ITEMS = 1_000        # entries of one array
RATE_MAX = 1_000         # percent: the highest rate a file may state
INT64 = (-(2 ** 63), 2 ** 63 - 1)
PROSE_FIELDS = frozenset({"note", "quote"})  # may hold newlines and tabs

STREAM_PATTERN = r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$"
STREAM_RE = re.compile(STREAM_PATTERN)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,35}$"
ID_RE = re.compile(ID_PATTERN)
FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

StreamId = Annotated[str, Meta(pattern=STREAM_PATTERN, max_length=200,
                               description="a measure id: a lowercase dotted path")]
EventId = Annotated[str, Meta(pattern=ID_PATTERN, description="an event id (a UUID)")]
FieldName = Annotated[str, Meta(pattern=FIELD_PATTERN)]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
Prose = Annotated[str, Meta(max_length=MAX_PROSE)]
Title = Annotated[str, Meta(min_length=1, max_length=MAX_TITLE)]
Rate = Annotated[float, Meta(ge=0, le=RATE_MAX, description="percent, 0 to 1000")]
Number = float
Jurisdiction = Annotated[str, Meta(pattern=r"^([a-z]{2,3}|all)$",
                                   description="a jurisdiction code (us, cn) or all")]

# -- the state fields an event may set -------------------------------------------------------
# name -> (type, meaning). Every field of `set`, `affects_set` and `schedule[].set` is one
# of these; anything else is refused. The free-form extras are declared text fields: facts
# the sources give that no query computes with.
STATE_FIELDS: dict[str, tuple[Any, str]] = {
    "rate": (Rate, "the rate in force, percent (collected at entry while the measure is in "
                   "force, whatever a court later rules; an announced or threatened rate is "
                   "kept by the fold as `announced_rate`/`threatened_rate`, a suspended or "
                   "ended one as `last_rate`)"),
    "status": (Literal[STATUSES], "announced, threatened, in_force, suspended, lifted, expired "
                                  "or withdrawn (a threat or announcement dropped)"),
    "legal_status": (Literal[LEGAL_STATUSES],
                     "unchallenged, challenged (suits filed), pending (awaiting a decision), "
                     "ruled_unlawful, stayed or invalidated"),
    "suspended_points": (Rate, "percentage points of the rate suspended"),
    "imposer": (Jurisdiction, "who imposes the measure"),
    "target": (Jurisdiction, "whom it targets"),
    "kind": (Literal[KINDS], "the kind of measure"),
    "scope": (Text, "what it covers; \"all goods\" makes a tariff count in `total tariff`"),
    "authority": (Text, "its legal authority, e.g. `IEEPA; EO 14257`"),
    "value": (Number, "an indicator's value"),
    "change_yoy": (Number, "an indicator's change on a year earlier, percent"),
    "unit": (Text, "an indicator's unit"),
    "period": (Text, "an indicator's period"),
}
# component rates of a measure's product lists, percent
RATE_FIELDS = (
    "aluminum_rate", "bus_rate", "coal_lng_rate", "copper_rate", "derivatives_rate",
    "enteral_syringes_rate", "ev_rate",
    "facemasks_respirators_rate", "kitchen_cabinets_vanities_rate", "li_ion_non_ev_rate",
    "medical_gloves_rate", "natural_graphite_rate", "other_rate", "permanent_magnets_rate",
    "rate_high", "rate_low", "semiconductors_rate", "solar_cells_rate", "steel_rate",
    "truck_rate", "upholstered_furniture_rate",
)
# free-form extras: text as the sources give it (dates in them are text, never compared)
TEXT_FIELDS = (
    "appeal", "argument", "basis", "board_of_trade", "boeing", "case", "change",
    "cn_position", "copper_refined_review_due", "court", "derivatives_adjusted",
    "dockets", "easing", "economies", "entities", "entities_added", "eu_green_channel",
    "exceptions", "exclusions", "exclusions_until", "exemptions", "expansion", "first_payments",
    "format", "general_licence", "hearing", "hearings_from", "holding", "implemented",
    "licence_policy", "licensing", "list_rates", "london_framework", "outcome", "participants",
    "phase", "phase_one", "phases", "planned_visit", "product_rates", "proposal", "qualifier",
    "rate_resolution", "rates", "refunds_processed", "soybean_purchases", "stage",
    "still_applies", "suspended_by", "suspended_until", "suspension", "suspension_scope",
    "tariff_cut_framework", "threatened_from", "update_due", "updates_due", "us_position",
    "us_side", "venue", "vote", "window_end", "withdrawn_update",
)
# a measure pattern (`*` for any part): goods under a matching measure do not also pay this one
_PATTERN = r"[a-z0-9*][a-z0-9*.-]*"
MeasurePatterns = Annotated[str, Meta(pattern=rf"^{_PATTERN}(, {_PATTERN})*$", max_length=400)]
STATE_FIELDS["not_stacked_with"] = (
    MeasurePatterns,
    "measure patterns, comma-separated (e.g. `us.tariff.section-232.*`): goods under a "
    "matching measure pay that one instead of this one; `total` and `tariff on` say so")
# -- product scopes (docs/products.md): what a tariff covers, by HTS prefix -------------------
# chapter 72, heading 8471, subheading 8517.13, 8-digit 8517.13.00, 10-digit 8507.60.0010
HTS_PATTERN = r"^\d{2}(\d{2}(\.\d{2}(\.\d{2}(\d{2})?)?)?)?$"
Hts = Annotated[str, Meta(pattern=HTS_PATTERN, description="an HTS prefix: 72, 8471, 8517.13, "
                                                           "8517.13.00 or 8507.60.0010")]
HtsList = Annotated[list[Hts], Meta(min_length=1, max_length=MAX_ITEMS)]
PRODUCT_FIELDS: dict[str, tuple[Any, str]] = {
    "hts": (HtsList, "HTS prefixes the measure covers at its `rate` (a product group: the "
                     "codes it names); without it a tariff covers what `scope` says "
                     "(\"all goods\": every code)"),
    "hts_rates": (Annotated[dict[Hts, Rate], Meta(min_length=1, max_length=MAX_ITEMS)],
                  "HTS prefix -> rate for the lines charged at their own rate; the longest "
                  "matching prefix of `hts` and `hts_rates` decides a code's rate"),
    "hts_excluded": (HtsList, "HTS prefixes carved out of the measure's own coverage (a "
                              "longer prefix than the covering one wins)"),
    "hts_coverage": (Literal["complete", "partial"],
                     "complete (default): a code the measure does not name is not covered; "
                     "partial: the log does not hold every line, so such a code's coverage "
                     "is not known"),
    "hts_within": (HtsList, "where the lines the log does not hold lie: a code under these "
                            "prefixes that the measure does not name is not known, any other "
                            "is not covered"),
    "hts_full_value": (HtsList, "with `content_basis`: the prefixes charged on their full "
                                "value (the article is the material itself)"),
    "content_basis": (Text, "the material whose content share alone pays this measure "
                            "(e.g. `steel`, `copper`); the rest of the value pays the others"),
    "exempts": (MeasurePatterns, "an exemption: while in force, the codes of its `hts` do not "
                                 "pay the measures matching these patterns"),
    "shipments": (Literal["postal"], "the measure applies only to shipments of this kind "
                                     "(`tariff on … by post`)"),
    "replaces_others": (bool, "true: the measure replaces every other duty on what it covers"),
    "specific_duty": (Text, "a per-item alternative to the ad valorem rate, as the sources "
                            "give it (e.g. `$100 per item`)"),
    "stacking_rule": (Text, "the sourced stacking rule behind `not_stacked_with` or "
                            "`exempts`, shown with the layer it removes"),
    "mfn_rates": (Annotated[dict[Hts, Rate], Meta(min_length=1, max_length=MAX_ITEMS)],
                  "a product group's general (MFN, column 1) duty by HTS prefix, percent, "
                  "where a source gives it: shown beside the additional duties"),
    "coverage_note": (Text, "what is not known about the measure's coverage (shown with "
                            "every layer it touches)"),
}
STATE_FIELDS.update(PRODUCT_FIELDS)
for _name in RATE_FIELDS:
    STATE_FIELDS[_name] = (Rate, "a component rate, percent")
for _name in TEXT_FIELDS:
    STATE_FIELDS[_name] = (Text, "free-form text")

if TYPE_CHECKING:
    StateSet = Struct  # built from STATE_FIELDS at run time: to a checker, some Struct
else:
    StateSet = msgspec.defstruct(
        "StateSet", [(name, Union[typ, UnsetType], UNSET) for name, (typ, _) in
                     STATE_FIELDS.items()], forbid_unknown_fields=True, omit_defaults=True)


DateRange = Annotated[list[dt.date], Meta(min_length=2, max_length=2,
                                          description="[earliest, latest]")]


class Source(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The citation every event carries."""

    name: Text
    file: Union[Text, UnsetType] = UNSET
    reference: Union[Text, UnsetType] = UNSET
    quote: Union[Prose, UnsetType] = UNSET
    outlet: Union[Text, UnsetType] = UNSET
    published: Union[dt.date, UnsetType] = UNSET
    url: Union[Text, UnsetType] = UNSET
    document: Union[Text, UnsetType] = UNSET


class ScheduledChange(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A change due later: on a date, fields set and fields removed."""

    on: dt.date
    set: Union[StateSet, UnsetType] = UNSET
    unset: Union[Annotated[list[FieldName], Meta(max_length=MAX_ITEMS)], UnsetType] = UNSET


class Event(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One event of an event file (`[[events]]`)."""

    stream: StreamId
    type: Literal[tuple(EVENT_TYPES)]  # type: ignore[valid-type]  # msgspec reads it at run time
    effective: dt.date
    title: Title
    source: Source
    known: Union[dt.date, UnsetType] = UNSET
    announced: Union[dt.date, UnsetType] = UNSET
    id: Union[EventId, UnsetType] = UNSET
    set: Union[StateSet, UnsetType] = UNSET
    unset: Union[Annotated[list[FieldName], Meta(max_length=MAX_ITEMS)], UnsetType] = UNSET
    schedule: Union[Annotated[list[ScheduledChange], Meta(max_length=MAX_ITEMS)],
                    UnsetType] = UNSET
    affects: Union[Annotated[list[StreamId], Meta(min_length=1, max_length=MAX_ITEMS)],
                   UnsetType] = UNSET
    affects_set: Union[StateSet, UnsetType] = UNSET
    affects_schedule: Union[Annotated[list[ScheduledChange], Meta(max_length=MAX_ITEMS)],
                            UnsetType] = UNSET
    supersedes: Union[Annotated[list[EventId], Meta(min_length=1, max_length=MAX_ITEMS)],
                      UnsetType] = UNSET
    disputed: Union[bool, UnsetType] = UNSET
    resolves: Union[Annotated[list[EventId], Meta(min_length=1, max_length=MAX_ITEMS)],
                    UnsetType] = UNSET
    resolution: Union[Text, UnsetType] = UNSET
    note: Union[Prose, UnsetType] = UNSET
    precision: Union[Literal[PRECISIONS], UnsetType] = UNSET  # type: ignore[valid-type]  # run time
    effective_between: Union[DateRange, UnsetType] = UNSET
    known_between: Union[DateRange, UnsetType] = UNSET
    date_qualifier: Union[Text, UnsetType] = UNSET
    confidence: Union[Literal[CONFIDENCES], UnsetType] = UNSET  # type: ignore[valid-type]  # run time


class EventFile(Struct, forbid_unknown_fields=True):
    """An event file: one or more events."""

    events: Annotated[list[Event], Meta(min_length=1, max_length=100_000)]


PAYLOAD_KEYS = ("title", "set", "unset", "schedule", "affects", "affects_set",
                "affects_schedule", "supersedes",
                "disputed", "resolves", "resolution", "note", "precision", "effective_between",
                "known_between",
                "date_qualifier", "confidence")
ENVELOPE_KEYS = ("stream", "type", "effective", "announced", "known", "id", "source")
SOURCE_KEYS = tuple(Source.__struct_fields__)
# Field descriptions for the generated docs table (the structs hold the types).
ENVELOPE_DOCS = {
    "stream": ("yes", "the measure or subject id (lowercase dotted path)"),
    "type": ("yes", "one of the event types"),
    "effective": ("yes", "valid time: the day the change takes effect (a date)"),
    "known": ("yes in files", "knowledge time: the day it became public (a date)"),
    "title": ("yes", f"a short human label, at most {MAX_TITLE} characters"),
    "source": ("yes", "the citation (a table; below)"),
    "announced": ("no", "the day it was announced (a date)"),
    "id": ("no", "the event's id; by default a content hash (same content, same id)"),
    "set": ("no", "state fields this event sets (below)"),
    "unset": ("no", "names of state fields this event removes"),
    "schedule": ("no", "changes due later: `{ on = DATE, set = {…}, unset = […] }`; "
                       "replaces the stream's pending schedule"),
    "affects": ("with `affects_set`", "other measures this event changes (court rulings)"),
    "affects_set": ("with `affects`", "fields set on every affected measure"),
    "affects_schedule": ("with `affects`", "conditional changes due later on every affected "
                                           "measure (a court's compliance deadline): "
                                           "`{ on = DATE, set = {…} }`; a later event "
                                           "affecting the measure with its own "
                                           "`affects_schedule` (`[]` for none: a stay) "
                                           "replaces them; the measure's own schedule stays"),
    "supersedes": ("retraction, correction", "ids of the events this event withdraws"),
    "disputed": ("no", "true: a report that conflicts with another source; recorded, not "
                       "applied"),
    "resolves": ("with `resolution`", "ids of disputed reports (same measure) a later source "
                                      "settles: from this event's known date they show as "
                                      "resolved, not disputed"),
    "resolution": ("with `resolves`", "what the settling source confirmed (text)"),
    "note": ("no", f"free text (newlines allowed), at most {MAX_PROSE} characters"),
    "precision": ("no", "day (default), month or year: how precise `effective` is"),
    "effective_between": ("no", "`[EARLIEST, LATEST]` when the sources give no day of effect "
                                "(`effective` = EARLIEST): the state is `uncertain` from EARLIEST "
                                "and changes on LATEST"),
    "known_between": ("no", "`[EARLIEST, LATEST]` when no source dates the day it became public "
                            "(`known` = EARLIEST): `known on` a day before LATEST reports the "
                            "change as `uncertain`"),
    "date_qualifier": ("no", "the sources' words for an uncertain date (\"late May\"), shown "
                             "with the range"),
    "confidence": ("no", "single-source: the event rests on one page (or only low-grade "
                         "pages); the qualifier is carried into the state"),
}


# -- layer 1: values anywhere ------------------------------------------------------------------
def check_values(doc: Any, path: str = "", depth: int = 0, prose: bool = False) -> None:
    """Refuse what no field may hold; raise Invalid(path, value, message) at the first."""
    if depth > MAX_DEPTH:
        raise Invalid(path, None, f"nested more than {MAX_DEPTH} levels deep")
    # exact types first: every event of every append passes here, and isinstance against
    # typing.Mapping costs more than the rest of the check (issue 15's append profile)
    kind = type(doc)
    if kind is str:
        _check_text(doc, path, prose)
    elif kind is dict:
        _check_mapping(doc, path, depth)
    elif kind is list:
        _check_sequence(doc, path, depth, prose)
    elif kind is bool or doc is None:
        return
    elif kind is float or kind is int:
        _check_number(doc, path)
    elif isinstance(doc, bool):
        return
    elif isinstance(doc, (float, int)):
        _check_number(doc, path)
    elif isinstance(doc, str):
        _check_text(doc, path, prose)
    elif isinstance(doc, Mapping):
        _check_mapping(doc, path, depth)
    elif isinstance(doc, (list, tuple)):
        _check_sequence(doc, path, depth, prose)


def _check_number(doc: float | int, path: str) -> None:
    if isinstance(doc, float):
        if not math.isfinite(doc):
            raise Invalid(path, doc, "must be a finite number (not NaN or infinity)")
    elif not INT64[0] <= doc <= INT64[1]:
        raise Invalid(path, doc, "is an integer beyond 64 bits")


def _check_mapping(doc: Mapping, path: str, depth: int) -> None:
    if len(doc) > MAX_ITEMS:
        raise Invalid(path, None, f"has more than {MAX_ITEMS} keys")
    leaf_ok = depth < MAX_DEPTH  # a value one level down may still be a leaf
    for k, v in doc.items():
        if type(k) is not str and not isinstance(k, str):
            raise Invalid(path, k, "keys must be text")
        # the common leaves are checked inline, and a value's path is only spelt out when
        # something is wrong or it has values of its own: same answers, less work
        if len(k) > MAX_PROSE or _SUSPECT.search(k):
            _check_text_closely(k, f"{path}.{k}" if path else k, False)
        kind = type(v)
        if leaf_ok and kind is str:
            if len(v) > MAX_PROSE or _SUSPECT.search(v):
                _check_text_closely(v, f"{path}.{k}" if path else k, k in PROSE_FIELDS)
        elif leaf_ok and (kind is bool or v is None):
            continue
        else:
            check_values(v, f"{path}.{k}" if path else k, depth + 1, k in PROSE_FIELDS)


def _check_sequence(doc: list | tuple, path: str, depth: int, prose: bool) -> None:
    if len(doc) > MAX_ITEMS * 100:
        raise Invalid(path, None, f"has more than {MAX_ITEMS * 100} entries")
    for i, v in enumerate(doc):
        check_values(v, f"{path}[{i}]", depth + 1, prose)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# one search finds whether a text needs a closer look (most never do)
_SUSPECT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _check_text(s: str, path: str, prose: bool) -> None:
    if len(s) > MAX_PROSE or _SUSPECT.search(s):
        _check_text_closely(s, path, prose)


def _check_text_closely(s: str, path: str, prose: bool) -> None:
    if _SURROGATE.search(s):
        raise Invalid(path, s, "holds a lone surrogate (not valid Unicode text)")
    m = (_CONTROL if prose else _CONTROL_LINE).search(s)
    if m:
        raise Invalid(path, s, f"holds the control character U+{ord(m.group()):04X}"
                               + ("" if prose else " (only note and quote may span lines)"))
    if len(s) > MAX_PROSE:
        raise Invalid(path, s, f"is longer than {MAX_PROSE} characters")


class Invalid(Exception):
    """One validation failure: where (a field path), the offending value, and what is wrong."""

    def __init__(self, path: str, value: Any, message: str):
        self.path, self.value, self.message = path, value, message
        super().__init__(f"{path}: {message}")

    def describe(self) -> str:
        """The message with the offending value, cut to a readable length."""
        if self.value is None:
            return self.message
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "…"
        return f"{self.message}; got {shown}"


# -- layer 2: the structs ----------------------------------------------------------------------
_PATH = re.compile(r"`\$([^`]*)`")


def _lookup(doc: Any, path: str) -> Any:
    """The value at a msgspec path like `.events[0].set.rate`, or None."""
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        try:
            doc = doc[int(index)] if index else doc[key]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


_KINDS_OF = {"float": "a number", "int": "a whole number", "str": "text",
             "date": "a date (YYYY-MM-DD, unquoted in TOML)", "bool": "true or false",
             "array": "an array", "object": "a table"}
_CHOICES = {"type": tuple(EVENT_TYPES), "status": STATUSES, "legal_status": LEGAL_STATUSES,
            "kind": KINDS, "precision": PRECISIONS, "confidence": CONFIDENCES}


def _invalid_from(exc: msgspec.ValidationError, doc: Any) -> Invalid:
    """msgspec's message, in the words of this format, with the field path and the value."""
    msg = str(exc)
    m = _PATH.search(msg)
    raw = m.group(1) if m else ""
    text = re.sub(r"\s*-\s*at\s*$", "", msg[:m.start()] if m else msg).strip()
    field_path = re.sub(r"^\.", "", raw)
    value = _lookup(doc, raw) if raw else None
    last = re.sub(r"\[\d+\]$", "", field_path.rsplit(".", 1)[-1])
    if (u := re.match(r"Object contains unknown field `([^`]+)`", text)):
        where = f"{field_path}.{u.group(1)}" if field_path else u.group(1)
        return Invalid(where, None, _unknown_message(field_path, u.group(1)))
    if (r := re.match(r"Object missing required field `([^`]+)`", text)):
        where = f"{field_path}.{r.group(1)}" if field_path else r.group(1)
        return Invalid(where, None, "missing required field")
    if (e := re.match(r"Expected `(\w+)`, got `\w+`", text)):
        text = f"must be {_KINDS_OF.get(e.group(1), e.group(1))}"
    elif text.startswith("Invalid enum value"):
        if last == "type":
            text = f"unknown event type {value!r}; expected one of {', '.join(EVENT_TYPES)}"
            value = None
        else:
            text = "must be one of " + ", ".join(_CHOICES.get(last, ()))
    elif text.startswith("Invalid RFC3339 encoded date"):
        text = "not a real calendar date written YYYY-MM-DD"
    elif (b := re.match(r"Expected `(float|int)` ([<>]=?) ([\d.]+)", text)):
        text = f"must be a number {b.group(2)} {float(b.group(3)):g}"
    elif text.startswith("Expected `str` matching regex"):
        text = ("must be a measure id: a lowercase dotted path like us.tariff.section-301.cn"
                if last in ("stream", "affects") else
                "must be an id: letters, digits and . _ : - (at most 36)" if last in (
                    "id", "supersedes") else "is not a valid name")
    elif (n := re.match(r"Expected `(str|array|object)` of length ([<>]=?) (\d+)", text)):
        unit = "characters" if n.group(1) == "str" else "entries"
        text = ("must not be empty" if n.group(2) == ">=" and n.group(3) == "1" else
                f"must have {n.group(2)} {n.group(3)} {unit}")
    return Invalid(field_path, value, text[:1].lower() + text[1:])


def _unknown_message(parent: str, name: str) -> str:
    import difflib

    last = re.sub(r"\[\d+\]$", "", parent.rsplit(".", 1)[-1]) if parent else ""
    if last in ("set", "affects_set") or parent.endswith(".set") and "schedule" in parent:
        options = list(STATE_FIELDS)
        what = "state field"
    elif last == "source":
        options, what = list(SOURCE_KEYS), "citation key"
    elif last.startswith("schedule"):
        options, what = ["on", "set", "unset"], "key of a scheduled change"
    else:
        options, what = list(Event.__struct_fields__), "key"
    close = difflib.get_close_matches(name, options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    extra = (" (free-form facts go in `note`, or a new declared field in "
             "timeline/log/validation.py)") if what == "state field" and not close else ""
    return f"unknown {what} {name!r}{hint}{extra}"


def convert(doc: Any, typ: Any, *, native_dates: bool) -> Any:
    """`doc` checked against `typ`; with `native_dates` (TOML), a date must be a real date
    value, never a string that looks like one. Raises Invalid."""
    check_values(doc)
    try:
        if native_dates:
            return msgspec.convert(doc, typ, strict=True,
                                   builtin_types=(dt.date, dt.datetime, dt.time))
        return msgspec.convert(doc, typ, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid_from(exc, doc) from None


# -- layer 3: rules across fields --------------------------------------------------------------
# the exports hold rates as decimal(18, 6): a finer rate, once in the immutable log, would
# make every export fail on it for good
RATE_DECIMALS = 6
RATE_NAMES = tuple(name for name, (typ, _) in STATE_FIELDS.items() if typ is Rate)


def _check_rate_places(fields, path: str) -> None:
    if fields is UNSET:
        return
    for name in RATE_NAMES:
        v = getattr(fields, name)
        if v is UNSET:
            continue
        if type(v) is int:
            continue
        text = repr(v)
        whole, dot, frac = text.partition(".")
        # a plain decimal repr has its places after the dot (the shortest repr that reads
        # back as the float); an exponent form is left to Decimal
        places = len(frac) if dot and "e" not in frac else \
            -decimal.Decimal(text).as_tuple().exponent  # type: ignore[operator]  # finite
        if places > RATE_DECIMALS:
            raise Invalid(f"{path}.{name}", v, f"has more than {RATE_DECIMALS} decimal places "
                                               "(the exports hold rates to 6)")


def check_rules(ev: Event) -> None:
    """What the structs cannot say; raises Invalid."""
    _check_rate_places(ev.set, "set")
    _check_rate_places(ev.affects_set, "affects_set")
    for i, item in enumerate(ev.schedule or ()):
        _check_rate_places(item.set, f"schedule[{i}].set")
    if ev.type in SUPERSEDING_TYPES:
        if ev.supersedes is UNSET:
            raise Invalid("supersedes", None,
                          f"a {ev.type} must name the event ids it supersedes")
        if ev.id is not UNSET and ev.id in ev.supersedes:
            raise Invalid("supersedes", ev.id, "an event cannot supersede itself")
        if len(set(ev.supersedes)) != len(ev.supersedes):
            raise Invalid("supersedes", ev.supersedes, "names the same event more than once")
    elif ev.supersedes is not UNSET:
        raise Invalid("supersedes", None, "only retraction and correction events supersede "
                                          "others")
    if (ev.resolves is UNSET) != (ev.resolution is UNSET):
        missing = "resolution" if ev.resolution is UNSET else "resolves"
        raise Invalid(missing, None, "`resolves` and `resolution` go together: the disputed "
                                     "reports settled and what the settling source confirmed")
    if ev.resolves is not UNSET:
        if ev.disputed is True or ev.type in SUPERSEDING_TYPES:
            raise Invalid("resolves", None, "a disputed report or a retraction/correction "
                                            "cannot settle a dispute")
        if len(set(ev.resolves)) != len(ev.resolves):
            raise Invalid("resolves", ev.resolves, "names the same event more than once")
    if ev.type == "retraction" and any(x is not UNSET for x in (
            ev.set, ev.unset, ev.schedule, ev.affects)):
        raise Invalid("set", None, "a retraction only withdraws events; to replace one, "
                                   "use a correction")
    if ev.type == "retitled":
        carried = [k for k in ("set", "unset", "schedule", "affects", "affects_set", "disputed",
                               "effective_between", "known_between")
                   if getattr(ev, k) is not UNSET]
        if carried:
            raise Invalid(carried[0], None, "a retitled event only gives the measure a new "
                                            "catalogue title (its `title`); it changes no state")
    if (ev.affects is UNSET) != (ev.affects_set is UNSET):
        missing = "affects_set" if ev.affects_set is UNSET else "affects"
        raise Invalid(missing, None, "`affects` and `affects_set` go together: the measures "
                                     "changed and the fields set on them")
    if ev.affects_schedule is not UNSET and ev.affects is UNSET:
        raise Invalid("affects_schedule", None, "names no measure: give `affects` and "
                                                "`affects_set`")
    for i, item in enumerate(ev.affects_schedule or ()):
        _check_rate_places(item.set, f"affects_schedule[{i}].set")
        if item.on <= ev.effective:
            raise Invalid(f"affects_schedule[{i}].on", item.on.isoformat(),
                          f"a scheduled change must fall after the event's effective date "
                          f"{ev.effective}")
    if ev.affects is not UNSET and len(set(ev.affects)) != len(ev.affects):
        raise Invalid("affects", ev.affects, "names the same measure more than once")
    if ev.affects is not UNSET and ev.stream in ev.affects:
        raise Invalid("affects", ev.stream, "an event cannot affect its own measure; use `set`")
    _check_range(ev.effective_between, ev.effective, "effective_between", "effective")
    if ev.known_between is not UNSET:
        _check_range(ev.known_between, ev.known if ev.known is not UNSET else None,
                     "known_between", "known")
    if ev.date_qualifier is not UNSET and ev.effective_between is UNSET \
            and ev.known_between is UNSET:
        raise Invalid("date_qualifier", None, "qualifies a date range: give effective_between "
                                              "or known_between")
    if ev.effective_between is not UNSET:
        for key in ("schedule", "affects"):
            if getattr(ev, key) is not UNSET:
                raise Invalid(key, None, "an event with effective_between cannot carry "
                                         f"`{key}`: enter that change as its own event")
    latest = ev.effective_between[1] if ev.effective_between is not UNSET else ev.effective
    if ev.schedule is not UNSET:
        for i, item in enumerate(ev.schedule):
            if item.on <= latest:
                raise Invalid(f"schedule[{i}].on", item.on.isoformat(),
                              f"a scheduled change must fall after the event's effective "
                              f"date {latest}")
    for key, day in (("known", ev.known),
                     ("known_between", ev.known_between[1]
                      if ev.known_between is not UNSET else UNSET)):
        # the exact limit (the clock, the environment) only for a day near it
        if day is not UNSET and day > _BEFORE_ANY_LIMIT and day > (latest_known :=
                                                                  known_limit()):
            raise Invalid(key, day.isoformat(),
                          f"is after {latest_known}: knowledge cannot be dated later than "
                          f"today (UTC) plus {known_margin_days()} days "
                          f"(TIMELINE_KNOWN_MARGIN_DAYS); a change due later is an "
                          f"`effective` date or a `schedule` entry")
    if ev.known is not UNSET and ev.announced is not UNSET and ev.announced > ev.known:
        raise Invalid("announced", ev.announced.isoformat(),
                      f"announced after it became known ({ev.known})")
    src = ev.source
    if src.file is not UNSET and src.quote is UNSET:
        raise Invalid("source.quote", None, "a citation of a source file needs a verbatim "
                                            "quote")
    if src.file is not UNSET and src.reference is not UNSET:
        raise Invalid("source.reference", None, "cite a source file or a reference table, "
                                                "not both")


# A `known` date may be up to this many days after today (UTC): a source in a later time
# zone, a clock a little ahead. Beyond it, `known on today` would differ from the log.
# TIMELINE_KNOWN_MARGIN_DAYS overrides it (e.g. to load a rehearsal dated in the future).
KNOWN_MARGIN_DAYS = 2


# no limit is ever earlier than this: UTC today is at most a day behind the local date this
# process started on, and the margin is never negative
_BEFORE_ANY_LIMIT = dt.date.today() - dt.timedelta(days=2)


def known_margin_days() -> int:
    """The margin in days: TIMELINE_KNOWN_MARGIN_DAYS when a whole number, else 2."""
    import os

    raw = (os.environ.get("TIMELINE_KNOWN_MARGIN_DAYS") or "").strip()
    return min(int(raw), 2_000_000) if raw.isdecimal() else KNOWN_MARGIN_DAYS


def known_limit() -> dt.date:
    """The latest day of knowledge admitted now: today (UTC) plus the margin."""
    today = dt.datetime.now(dt.timezone.utc).date()
    try:
        return today + dt.timedelta(days=known_margin_days())
    except OverflowError:
        return dt.date.max


def _check_range(rng: Any, start: dt.date | None, key: str, envelope: str) -> None:
    if rng is UNSET:
        return
    if rng[0] >= rng[1]:
        raise Invalid(key, [d.isoformat() for d in rng],
                      "must be [earliest, latest] with earliest before latest")
    if start is not None and rng[0] != start:
        raise Invalid(key, rng[0].isoformat(),
                      f"must start on the event's `{envelope}` date {start}")


def stored_document(ev) -> dict:
    """The checkable document of an event offered to the store or read from it."""
    doc: dict[str, Any] = {"stream": ev.stream, "type": ev.type, "effective": ev.effective}
    for key in ("known", "announced", "id"):
        value = getattr(ev, key, None)
        if value is not None:
            doc[key] = value
    payload = ev.payload if isinstance(ev.payload, Mapping) else {}
    doc.update(payload)
    doc["source"] = ev.source
    return doc


def validate(ev) -> Event:
    """Check one event (a NewEvent, or a stored Event) against the schema; raise
    EventValidationError naming its file, line, field and the offending value."""
    if not isinstance(ev.payload, Mapping):
        reject(ev, "payload", Invalid("payload", ev.payload, "must be a table").describe())
    if not isinstance(ev.source, Mapping):
        reject(ev, "source", Invalid("source", ev.source,
                                     "missing: every event must cite its source").describe())
    overlap = set(ev.payload) & set(ENVELOPE_KEYS)
    if overlap:
        key = sorted(overlap)[0]
        reject(ev, key, Invalid(key, None, f"{key!r} is an envelope key, not a payload "
                                           f"key").describe())
    doc = stored_document(ev)
    try:
        checked = convert(doc, Event, native_dates=False)
        check_rules(checked)
    except Invalid as inv:
        reject(ev, inv.path, inv.describe())
    return checked


# -- admission: the one way an event becomes a CheckedEvent --------------------------------
_SEAL = object()  # only this module makes CheckedEvents the store takes as checked


def admit(ev: NewEvent) -> CheckedEvent:
    """`ev` as admitted: a CheckedEvent this module made whose payload and source are
    unchanged since is taken as it is; any other event is validated (EventValidationError
    naming its file, line and field) and sealed."""
    if isinstance(ev, CheckedEvent) and ev.seal is _SEAL \
            and _same_json(ev.payload, ev.payload_json) \
            and _same_json(ev.source, ev.source_json):
        return ev
    validate(ev)
    return _sealed(ev)


def admit_document(item: Any, origin: str, label: str, *, native_dates: bool) -> CheckedEvent:
    """One `[[events]]` table of an event file, checked and admitted; an event without an
    id gets its content id (reloading a file offers the same ids). `origin` is "file:line",
    `label` names the event in an error; TOML gives `native_dates`."""
    try:
        if not isinstance(item, dict):
            raise Invalid("", item, "each event must be a table")
        ev = convert(item, Event, native_dates=native_dates)
        if ev.known is UNSET:
            raise Invalid("known", None, "missing required field: the day it became public")
        check_rules(ev)
    except Invalid as inv:
        reject_at(origin, label, inv.path, inv.describe())
    payload = {k: _jsonable(item[k]) for k in PAYLOAD_KEYS if k in item}
    new = NewEvent(stream=ev.stream, type=ev.type, effective=ev.effective, known=ev.known,
                   announced=None if ev.announced is UNSET else ev.announced,
                   payload=payload, source=_jsonable(item["source"]),
                   id=None if ev.id is UNSET else ev.id, origin=origin)
    return _sealed(new if new.id else new.with_id(content_id(new)))


def _sealed(ev: NewEvent) -> CheckedEvent:
    return CheckedEvent(ev.stream, ev.type, ev.effective, ev.payload, ev.source, ev.known,
                        ev.announced, ev.id, ev.origin, canonical_json(ev.payload),
                        canonical_json(ev.source), _SEAL)


def _same_json(value: Any, text: str) -> bool:
    try:
        return canonical_json(value) == text
    except (EventValidationError, TypeError, ValueError):
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def json_schema() -> dict:
    """The JSON Schema of the event-file format (what `timeline schema` prints)."""
    schema = msgspec.json.schema(EventFile)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "timeline event file"
    schema["description"] = ("One or more events, each citing its source. TOML files "
                             "write dates as TOML dates; JSON files as YYYY-MM-DD strings.")
    return schema


def field_tables() -> str:
    """The markdown field tables of docs/event-format.md, generated from the declarations."""
    env = ["| key | required | meaning |", "|---|---|---|"]
    for key in Event.__struct_fields__:
        req, meaning = ENVELOPE_DOCS[key]
        env.append(f"| `{key}` | {req} | {meaning} |")
    state = ["| field | type | meaning |", "|---|---|---|"]
    for name, (typ, meaning) in STATE_FIELDS.items():
        if name in RATE_FIELDS or name in TEXT_FIELDS:
            continue
        state.append(f"| `{name}` | {_type_name(typ)} | {meaning} |")
    state.append(f"| {', '.join(f'`{n}`' for n in RATE_FIELDS)} | number, 0 to {RATE_MAX} | "
                 f"component rates, percent |")
    state.append(f"| {', '.join(f'`{n}`' for n in TEXT_FIELDS)} | text | free-form extras: "
                 f"facts as the sources give them (dates in them are text) |")
    src = ["| key | meaning |", "|---|---|"]
    src_docs = {
        "name": "the public source: each `;`-separated part must be a whole source name of "
                "the cited reference table (case-insensitive)",
        "file": "a source article under `sources/` (then `quote` is required)",
        "reference": "a checked fact table under `reference/` (e.g. `timeline-facts.md`)",
        "quote": "verbatim text; must appear in the cited file or table (typography folded)",
        "outlet": "the outlet, when the source is a syndicated copy",
        "published": "publication date (a date), when the source gives it",
        "url": "the address, when known",
        "document": "an official document's name or number",
    }
    for key in SOURCE_KEYS:
        src.append(f"| `{key}` | {src_docs[key]} |")
    return "\n".join(["### Envelope and payload keys", "", *env, "", "### State fields", "",
                      *state, "", "### Citation keys (`source`)", "", *src])


def _type_name(typ: Any) -> str:
    if typ is Rate:
        return f"number, 0 to {RATE_MAX}"
    if typ is Number:
        return "number (finite)"
    if typ is Jurisdiction:
        return "jurisdiction code (`us`, `cn`, …) or `all`"
    if getattr(typ, "__origin__", None) is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typ.__args__)
    return "text"
