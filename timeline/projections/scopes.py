"""Product scopes: which tariff layers a good pays, from the measures' states on one day.

Pure functions, no database: the query layer reads each measure's state (as of D, known on
K) and hands them here, so one definition of coverage, exemption and stacking serves
`tariff on`, its history, `first date where tariff on …` and the export. The rules, in the
order they are applied (docs/products.md):

1. coverage: the longest prefix of the code among a measure's `hts` and `hts_rates`; an
   `hts_excluded` prefix longer than that carves the code out; a measure with neither
   covers every code when its scope is "all goods", and otherwise (or under
   `hts_coverage = "partial"`) its coverage of the code is *not known*;
2. only a measure `in_force` with a rate is charged (announced, suspended, threatened and
   ended measures are listed, never added); a rate later invalidated by a court was still
   collected at entry and is marked refundable;
3. an exemption in force (`kind = "exemption"`) whose `hts` covers the code removes the
   measures its `exempts` patterns match;
4. a measure whose `not_stacked_with` patterns match another charged layer is not added;
   when that other layer is charged on a content share (`content_basis`), it applies to the
   rest of the value instead;
5. a postal shipment pays a `replaces_others` postal duty alone.
"""
from __future__ import annotations

import decimal
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

HTS_DIGITS = re.compile(r"\d{2}(\d{2}(\d{2}(\d{2}(\d{2})?)?)?)?")
HTS_TEXT = re.compile(r"\d{2,10}(\.\d{1,6})*")


def hts_digits(code: str) -> str | None:
    """The digits of an HTS code or prefix (dots dropped), or None when it is not HTS-shaped:
    2, 4, 6, 8 or 10 digits."""
    code = code.strip()
    if not HTS_TEXT.fullmatch(code):
        return None
    digits = code.replace(".", "")
    return digits if HTS_DIGITS.fullmatch(digits) else None


def hts_render(digits: str) -> str:
    """Digits as the dotted HTS form: 8517130000 -> 8517.13.0000."""
    if len(digits) <= 4:
        return digits
    parts = [digits[:4], digits[4:6]]
    if len(digits) > 6:
        parts.append(digits[6:])
    return ".".join(parts)


def _prefixes(values: Any) -> list[str]:
    if isinstance(values, dict):
        values = list(values)
    out = []
    for v in values if isinstance(values, (list, tuple)) else ():
        d = hts_digits(str(v))
        if d:
            out.append(d)
    return out


def _longest(code: str, prefixes: Iterable[str]) -> str | None:
    best = None
    for p in prefixes:
        if code.startswith(p) and (best is None or len(p) > len(best)):
            best = p
    return best


def _number(v: Any) -> float | int | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


NO_LINES = "the log names no HTS lines for this measure"


@dataclass
class Coverage:
    """How a measure's scope treats one code: covered (at a rate), not covered, or unknown."""

    covered: bool | None  # None: not known
    rate: float | int | None = None
    matched: str | None = None  # the prefix that decided it
    why: str = ""


@dataclass(frozen=True, slots=True)
class Scope:
    """A state's HTS fields read once: what `coverage` compares a code with."""

    rates: dict  # prefix digits -> rate (hts_rates)
    listed: tuple  # prefix digits charged at the state's rate (hts)
    excluded: tuple
    partial: bool
    all_goods: bool
    within: tuple = ()  # where the lines the log does not hold lie (hts_within)


def scope_of(state: dict) -> Scope:
    """The HTS fields of `state`, parsed."""
    rates = state["hts_rates"] if isinstance(state.get("hts_rates"), dict) else {}
    by_digits = {d: v for d, v in ((hts_digits(str(k)), v) for k, v in rates.items()) if d}
    return Scope(by_digits, tuple(_prefixes(state.get("hts"))),
                 tuple(_prefixes(state.get("hts_excluded"))),
                 state.get("hts_coverage") == "partial", state.get("scope") == "all goods",
                 tuple(_prefixes(state.get("hts_within"))))


def coverage(state: dict, code: str, scope: Scope | None = None) -> Coverage:
    """Whether `state`'s scope covers the HTS digits `code`, and at which rate."""
    sc = scope or scope_of(state)
    if not sc.listed and not sc.rates and sc.within:
        inside = _longest(code, sc.within)
        if inside is None:
            return Coverage(False, None, None, "its lines lie elsewhere")
        return Coverage(None, None, None, f"its lines under {hts_render(inside)} are not in "
                                          f"the log")
    if not sc.listed and not sc.rates:
        if sc.all_goods and not sc.partial:
            return Coverage(True, _rate_of(state), None, "all goods")
        return Coverage(None, None, None, NO_LINES)
    best = _longest(code, [*sc.listed, *sc.rates])
    excluded = _longest(code, sc.excluded)
    if excluded is not None and (best is None or len(excluded) > len(best)):
        return Coverage(False, None, excluded, f"{hts_render(excluded)} is outside its scope")
    if best is None:
        narrower = sorted(p for p in [*sc.listed, *sc.rates] if p.startswith(code))
        if narrower:
            shown = ", ".join(hts_render(p) for p in narrower[:5])
            more = f" and {len(narrower) - 5} more" if len(narrower) > 5 else ""
            return Coverage(None, None, None, f"it names only some lines under this code "
                                              f"({shown}{more}): ask about the full code")
        if sc.within:
            inside = _longest(code, sc.within)
            if inside is None:
                return Coverage(False, None, None, "its lines lie elsewhere")
            return Coverage(None, None, None, f"the log does not hold every line it covers "
                                              f"under {hts_render(inside)}, and none it holds "
                                              f"names this code")
        if sc.partial:
            return Coverage(None, None, None, "the log does not hold every line it covers, "
                                              "and none it holds names this code")
        return Coverage(False, None, None, "its HTS lines do not include this code")
    rate = sc.rates[best] if best in sc.rates else _rate_of(state)
    return Coverage(True, _number(rate), best, f"covers {hts_render(best)}")


def _rate_of(state: dict) -> float | int | None:
    """The rate a state charges, or (not yet in force) the one announced or threatened."""
    for key in ("rate", "announced_rate", "threatened_rate"):
        if _number(state.get(key)) is not None:
            return _number(state.get(key))
    return None


@dataclass
class Layer:
    """One measure's part in a product's duty on one day."""

    measure: str
    status: str | None
    rate: float | int | None = None  # the rate the code would pay under this measure
    applies: bool | None = False  # None: not known
    why: str = ""
    since: str | None = None
    events: list[str] = field(default_factory=list)
    legal_status: str | None = None
    confidence: str | None = None
    refundable: bool = False
    share: str | None = None  # "content" / "rest": the part of the value it is charged on
    share_pct: float | None = None
    notes: list[str] = field(default_factory=list)
    title: str | None = None
    disputed: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The layer as JSON."""
        out: dict = {"measure": self.measure, "rate": self.rate, "applies": self.applies,
               "why": self.why, "status": self.status, "since": self.since,
               "events": list(self.events)}
        for key in ("legal_status", "confidence", "share", "share_pct", "title"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.refundable:
            out["refundable"] = True
        if self.notes:
            out["notes"] = list(self.notes)
        if self.disputed:
            out["disputed"] = list(self.disputed)
        return out


@dataclass
class Measure:
    """A measure's state on the day asked, as the query layer read it."""

    stream: str
    state: dict
    since: str | None
    events: list[str]
    refundable: bool = False  # its authority was invalidated, as known on the day asked
    title: str | None = None
    scope: Scope | None = None  # the state's HTS fields, parsed (by a cache that holds it)


@dataclass
class Evaluation:
    """The layers of one code on one day and their total."""

    code: str
    layers: list[Layer]
    total: float | int | None
    complete: bool  # False when some layer's coverage is not known
    refundable: float | int = 0
    portions: list[dict] | None = None  # per share of value, when a share was not given
    alternatives: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_covering: int = 0  # measures in force that do not cover the code (not listed)
    unplaced: list[str] = field(default_factory=list)  # in force, no HTS lines in the log


_NOT_IN_FORCE = {
    "announced": "announced, not in force (an announcement is not a rate)",
    "threatened": "threatened, not in force (a threat is not a rate)",
    "suspended": "suspended", "lifted": "lifted", "expired": "expired",
    "withdrawn": "withdrawn (never took effect)",
    "uncertain": "uncertain on this day (its change falls on a day the sources do not fix)",
}


def _matches(measure: str, patterns: str | None) -> bool:
    return any(fnmatch.fnmatchcase(measure, p.strip()) for p in str(patterns or "").split(",")
               if p.strip())


def evaluate(code: str, measures: list[Measure], exemptions: list[Measure], *,
             shares: dict[str, float] | None = None, postal: bool = False) -> Evaluation:
    """The layers `code` (HTS digits) pays given each measure's and exemption's state."""
    shares = {k.lower(): v for k, v in (shares or {}).items()}
    layers: list[Layer] = []
    not_covering = 0
    postal_only: list[str] = []  # postal duties, when the question is not about a parcel
    unplaced: list[str] = []  # in force, but the log names none of their lines
    for m in measures:
        st = m.state
        cov = coverage(st, code, m.scope)
        layer = Layer(m.stream, st.get("status"), cov.rate, False, "", m.since, list(m.events),
                      st.get("legal_status") if st.get("legal_status") not in
                      (None, "unchallenged") else None, st.get("confidence"),
                      title=m.title)
        if st.get("coverage_note"):
            layer.notes.append(str(st["coverage_note"]))
        for d in st.get("disputed") or ():
            if isinstance(d, dict):
                layer.disputed.append({**(d.get("claims") or {}), "source": d.get("source")})
        status = st.get("status")
        if cov.covered is False:
            not_covering += 1
            continue
        if st.get("shipments") == "postal" and not postal:
            if status == "in_force":  # not covering (False) was skipped above
                postal_only.append(m.stream)
            continue
        if cov.covered is None and cov.matched is None and cov.why == NO_LINES:
            if status == "in_force":
                unplaced.append(m.stream)
            continue
        if status == "withdrawn":
            continue  # a threat or announcement dropped: it never was a rate
        if status != "in_force" and cov.covered is None:
            not_covering += 1  # nothing charged, and nothing known to name the code
            continue
        if status != "in_force":
            layer.why = _NOT_IN_FORCE.get(str(status), f"not in force ({status or 'no status'})")
            layer.rate = cov.rate if cov.rate is not None else _rate_of(st)
            if layer.rate is None and status == "suspended":
                layer.rate = _number(st.get("last_rate"))  # the rate suspended
            if cov.covered is None:
                layer.why += "; coverage of this code not known"
        elif cov.covered is None:
            layer.applies = None
            layer.rate = _rate_of(st)
            layer.why = f"coverage not known: {cov.why}"
        elif cov.rate is None:
            layer.why = "in force with no rate on this day"
        else:
            layer.applies = True
            layer.why = cov.why
            if m.refundable:
                layer.refundable = True
                layer.notes.append("collected at entry; its authority was later invalidated: "
                                   "refundable")
        layers.append(layer)
    # exemptions in force whose lines cover the code
    for ex in exemptions:
        st = ex.state
        if st.get("status") != "in_force":
            continue
        cov = coverage({**st, "scope": None}, code, ex.scope)
        if cov.covered is None and "only some lines" in cov.why:
            for layer in layers:
                if layer.applies and _matches(layer.measure, st.get("exempts")):
                    layer.applies = None
                    layer.why = f"depends on the line: {ex.title or ex.stream} exempts " \
                                f"{cov.why.split('(')[1].split(')')[0]}; ask about the full code"
            continue
        if not cov.covered:
            continue
        for layer in layers:
            if layer.applies is not False and _matches(layer.measure, st.get("exempts")):
                layer.applies = False
                rule = f" ({st['stacking_rule']})" if st.get("stacking_rule") else ""
                layer.why = (f"exempt: {ex.title or ex.stream} covers "
                             f"{hts_render(cov.matched or code)}{rule}")
                layer.events = list(dict.fromkeys(layer.events + ex.events))
                if st.get("confidence"):
                    layer.notes.append(f"the exemption is {st['confidence']}")
    charged = [l for l in layers if l.applies]
    content = {l.measure: str(_state(measures, l.measure).get("content_basis"))
               for l in charged if _state(measures, l.measure).get("content_basis")}
    # stacking: measured against the layers charged before any is removed
    for layer in charged:
        st = _state(measures, layer.measure)
        others = [o for o in charged if o is not layer and _matches(o.measure,
                                                                   st.get("not_stacked_with"))]
        if not others:
            continue
        rule = f" ({st['stacking_rule']})" if st.get("stacking_rule") else ""
        on_content = [o for o in others if o.measure in content
                      and not _full_value(_state(measures, o.measure), code)]
        if on_content and len(on_content) == len(others):
            layer.share = "rest"
            layer.why += (f"; charged only on the value outside the "
                          f"{content[on_content[0].measure]} of {on_content[0].measure}{rule}")
            continue
        layer.applies = False
        layer.why = (f"not stacked: goods under {', '.join(o.measure for o in others)} pay "
                     f"that instead{rule}")
    # content shares
    portions = None
    total_parts: list[tuple[Layer, decimal.Decimal]] = []
    open_share = False
    for layer in layers:
        if not layer.applies:
            continue
        st = _state(measures, layer.measure)
        rate = _dec(layer.rate)
        if layer.measure in content and not _full_value(st, code):
            material = content[layer.measure]
            pct = _share_for(material, shares)
            layer.share = "content"
            if pct is None:
                open_share = True
                layer.notes.append(f"charged on the {material} only: give the share with "
                                   f"`with <material> content N%`")
                continue
            layer.share_pct = pct
            total_parts.append((layer, rate * _dec(pct) / 100))
        elif layer.share == "rest":
            pct = _rest_share(layer, measures, content, shares)
            if pct is None:
                open_share = True
                continue
            layer.share_pct = pct
            total_parts.append((layer, rate * _dec(pct) / 100))
        else:
            total_parts.append((layer, rate))
    notes: list[str] = []
    # postal shipments: a duty that replaces every other
    if postal:
        replacing = [l for l in layers if l.applies and
                     _state(measures, l.measure).get("replaces_others")]
        if replacing:
            keep = replacing[0]
            for layer in layers:
                if layer.applies and layer is not keep:
                    layer.applies = False
                    layer.why = f"replaced by {keep.measure} (postal duty replaces all others)"
            total_parts = [(keep, _dec(keep.rate))]
            open_share = False
            duty = _state(measures, keep.measure).get("specific_duty")
            if duty:
                notes.append(f"{keep.measure}: {_fmt(keep.rate)} or {duty}")
    if open_share:
        portions = _portions(layers, content)
    total = None if open_share else _plain(sum((v for _, v in total_parts), decimal.Decimal(0)))
    refundable = _plain(sum((v for l, v in total_parts if l.refundable), decimal.Decimal(0)))
    # a layer whose coverage is not known leaves the total open unless its rate is 0
    complete = all(l.applies is not None or l.rate == 0 for l in layers)
    ev = Evaluation(code, layers, total, complete,
                    refundable if total is not None else 0, portions, [], notes, not_covering)
    ev.alternatives = _alternatives(ev, total_parts) + _disputed_exemptions(
        ev, total_parts, exemptions, code)
    ev.unplaced = unplaced
    if postal_only:
        ev.notes.append(f"a postal shipment pays {', '.join(postal_only)} instead (ask "
                        f"`… by post`)")
    return ev


def _state(measures: list[Measure], stream: str) -> dict:
    for m in measures:
        if m.stream == stream:
            return m.state
    return {}


def _full_value(state: dict, code: str) -> bool:
    return _longest(code, _prefixes(state.get("hts_full_value"))) is not None


def _share_for(material: str, shares: dict[str, float]) -> float | None:
    words = set(re.findall(r"[a-z]+", material.lower()))
    for name, pct in shares.items():
        if name in words or name.rstrip("s") in words or name in material.lower():
            return pct
    return None


def _rest_share(layer: Layer, measures, content, shares) -> float | None:
    """The share of the value outside the content a non-stacking layer yields to."""
    st = _state(measures, layer.measure)
    for other, material in content.items():
        if _matches(other, st.get("not_stacked_with")):
            pct = _share_for(material, shares)
            return None if pct is None else 100 - pct
    return None


def _portions(layers: list[Layer], content: dict[str, str]) -> list[dict]:
    """Rates per part of the value, when a content share was not given."""
    whole, on_content, on_rest = [], [], []
    for layer in layers:
        if not layer.applies:
            continue
        if layer.share == "content":
            on_content.append(layer)
        elif layer.share == "rest":
            on_rest.append(layer)
        else:
            whole.append(layer)
    material = next(iter(content.values()), "content")
    content_rate = _plain(sum((_dec(l.rate) for l in whole + on_content), decimal.Decimal(0)))
    rest_rate = _plain(sum((_dec(l.rate) for l in whole + on_rest), decimal.Decimal(0)))
    return [{"portion": f"{material} value", "rate": content_rate,
             "layers": [l.measure for l in whole + on_content]},
            {"portion": "rest of the value", "rate": rest_rate,
             "layers": [l.measure for l in whole + on_rest]}]


def _alternatives(ev: Evaluation, parts: list[tuple[Layer, decimal.Decimal]]) -> list[dict]:
    """Totals a disputed report of a charged layer's rate would give instead."""
    if ev.total is None:
        return []
    out = []
    for layer, value in parts:
        for claim in layer.disputed:
            rate = _number(claim.get("rate"))
            if rate is None or layer.share_pct is not None:
                continue
            alt = _plain(_dec(ev.total) - value + _dec(rate))
            out.append({"measure": layer.measure, "rate": rate, "total": alt,
                        "source": claim.get("source")})
    return out


def _disputed_exemptions(ev: Evaluation, parts, exemptions: list[Measure],
                         code: str) -> list[dict]:
    """Totals a disputed report that an exemption covers the code would give instead."""
    if ev.total is None:
        return []
    out = []
    for ex in exemptions:
        st = ex.state
        if st.get("status") != "in_force":
            continue
        for claim in st.get("disputed") or ():
            claimed = (claim.get("claims") or {}) if isinstance(claim, dict) else {}
            if not claimed.get("hts") or coverage({**st, "scope": None}, code, ex.scope).covered:
                continue
            if not coverage({"hts": claimed["hts"]}, code).covered:
                continue
            for layer, value in parts:
                if _matches(layer.measure, claimed.get("exempts") or st.get("exempts")):
                    out.append({"measure": layer.measure, "exempt_by": ex.stream,
                                "total": _plain(_dec(ev.total) - value),
                                "source": claim.get("source")})
    return out


def _dec(v: Any) -> decimal.Decimal:
    return decimal.Decimal(repr(v)) if v is not None else decimal.Decimal(0)


def _plain(d: decimal.Decimal) -> float | int:
    return int(d) if d == d.to_integral_value() else float(d.normalize())


def _fmt(rate: Any) -> str:
    if rate is None:
        return "no rate"
    return f"{int(rate) if float(rate).is_integer() else rate}%"
