"""Timing helpers: nanosecond clocks, percentiles, medians, peak RSS."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Iterable, Sequence

now_ns = time.perf_counter_ns


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    s = sorted(samples)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: Iterable[float]) -> float:
    """Median of `values`."""
    return float(statistics.median(list(values)))


def latencies_ns(fn: Callable, args: Sequence[tuple], warmup: int = 200) -> list[int]:
    """Per-call wall times of fn(*a) for every a in args, after `warmup` untimed calls."""
    for a in args[:warmup]:
        fn(*a)
    out = []
    for a in args:
        t0 = now_ns()
        fn(*a)
        out.append(now_ns() - t0)
    return out


def paired_latencies(fa: Callable, fb: Callable, args: Sequence[tuple], warmup: int = 200
                     ) -> tuple[list[int], list[int]]:
    """Per-call times of fa(*a) and fb(*a) for every a, in pairs, alternating which runs first
    (so that whatever one leaves warm in a cache benefits both equally)."""
    for a in args[:warmup]:
        fa(*a)
        fb(*a)
    ta, tb = [], []
    for i, a in enumerate(args):
        for f, out in (((fa, ta), (fb, tb)) if i % 2 == 0 else ((fb, tb), (fa, ta))):
            t0 = now_ns()
            f(*a)
            out.append(now_ns() - t0)
    return ta, tb


def vm_hwm_kb() -> int | None:
    """Peak resident set size of this process (VmHWM), in KiB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except Exception:  # pragma: no cover
        return None
