"""Text sparklines: a row of block characters for a sequence of numbers, for terminals."""
from __future__ import annotations

from typing import Iterable, Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Iterable[float | None]) -> str:
    """One block character per value, scaled between the smallest and largest; None is a space."""
    vals = list(values)
    nums = [v for v in vals if v is not None]
    if not nums:
        return " " * len(vals)
    lo, hi = min(nums), max(nums)
    span = hi - lo
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif span == 0:
            # a flat series: mid-height, so it reads as "constant" rather than "zero"
            out.append(BLOCKS[len(BLOCKS) // 2 - 1] if hi else BLOCKS[0])
        else:
            out.append(BLOCKS[round((v - lo) / span * (len(BLOCKS) - 1))])
    return "".join(out)


def rate_values(intervals: Sequence[dict]) -> list[float | None]:
    """The rate of each interval of a history answer (None where there is no numeric rate)."""
    out: list[float | None] = []
    for iv in intervals:
        rate = iv.get("rate")
        out.append(float(rate) if isinstance(rate, (int, float))
                   and not isinstance(rate, bool) else None)
    return out


def history_sparklines(data: dict) -> list[str]:
    """`<measure>  <sparkline>  <first>→<last>` for each measure of a history answer's data."""
    results = data.get("results") or []
    width = max((len(r["measure"]) for r in results), default=0)
    lines = []
    for r in results:
        vals = rate_values(r["intervals"])
        nums = [v for v in vals if v is not None]
        if not nums:
            continue
        fmt = lambda v: str(int(v)) if float(v).is_integer() else str(v)  # noqa: E731
        lines.append(f"{r['measure'].ljust(width)}  {sparkline(vals)}  "
                     f"{fmt(nums[0])}→{fmt(nums[-1])} (min {fmt(min(nums))}, "
                     f"max {fmt(max(nums))})")
    return lines
