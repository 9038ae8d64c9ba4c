"""Make the chart images of the README and docs/charts.md from the bundled seeds.

    python docs/make_images.py            # writes docs/img/*.png and docs/img/total-us-cn.svg
    python docs/make_images.py OUTDIR     # the same images into another folder

Each image is made by the `timeline chart` command shown in CHARTS, on a fresh database
holding only the bundled seeds, with fixed dates, so the pictures do not depend on the day
they are made.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

IMG = Path(__file__).resolve().parent / "img"
# (file, query, options): the commands docs/charts.md shows
CHARTS = [
    ("total-us-cn.png", "total tariff by us on cn",
     ["--from", "2025-01-01", "--to", "2026-09-30", "--known-on", "2025-06-10"]),
    ("history-us-cn.png", "history of us.tariff.ieepa-*.cn from 2025-01-01 to 2026-09-30",
     ["--known-on", "2025-06-10"]),
    ("section-301.png", "history of us.tariff.section-301.cn from 2024-06-01 to 2026-09-30", []),
    ("tariff-smartphones.png", "history of tariff on smartphones from cn from 2025-01-01 "
     "to 2026-06-30", ["--known-on", "2025-04-10"]),
    ("total-us-cn.svg", "total tariff by us on cn",
     ["--from", "2025-01-01", "--to", "2026-03-31", "--known-on", "2025-06-10"]),
]


def main(argv: list[str]) -> int:
    """Draw every image of CHARTS into docs/img (or argv[0]); exit 1 if a command failed."""
    out = Path(argv[0]) if argv else IMG
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "docs.db")
        timeline = [sys.executable, "-m", "timeline", "--db", db]
        subprocess.run([*timeline, "init"], check=True, capture_output=True)
        for name, query, options in CHARTS:
            r = subprocess.run([*timeline, "chart", query, *options, "-o", str(out / name)],
                               capture_output=True, text=True)
            print(r.stdout.strip() or r.stderr.strip())
            if r.returncode:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
