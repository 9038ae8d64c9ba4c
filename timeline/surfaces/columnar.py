"""Parquet copies of the export's CSV tables, for pandas, DuckDB and Polars.

Same columns as the CSVs, with types a columnar reader can use: dates as `date32`, rates and
totals as float64 (pandas reads them as numbers; a decimal column arrives as `object`), each
checked first to hold at most six places, so the float is the shortest repr of the decimal
written (7.5 stays 7.5), flags as booleans, missing values as nulls; structured values (state,
scope, event ids) stay the CSV's JSON text. Written only when pyarrow (the `parquet` extra) is
importable; the export says in its manifest when not.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

from timeline import api
from timeline.errors import TimelineError

# 18 digits, 6 after the point: any rate the schema admits (it refuses finer ones), checked
# value by value below for logs written before it did
RATE_PRECISION, RATE_SCALE = 18, api.rate_decimals()
MISSING = "not written: pyarrow is not installed (pip install 'timeline[parquet]')"


def available() -> bool:
    """Whether pyarrow can be imported (the Parquet files are written only then)."""
    try:
        import pyarrow  # noqa: F401 - optional extra
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _type(pa, kind: str):
    return {"date": pa.date32(), "rate": pa.float64(),
            "bool": pa.bool_(), "text": pa.string(), "number": pa.float64()}[kind]


def _value(kind: str, v, where: str):
    """One cell as the Arrow column of `kind` takes it; None stays a null."""
    if v is None or v == "":
        return None
    if kind == "date":
        return dt.date.fromisoformat(v) if isinstance(v, str) else v
    if kind == "rate":
        if isinstance(v, bool) or not isinstance(v, (int, float, decimal.Decimal)):
            raise TimelineError(f"{where} {str(v)[:40]!r} is not a number; the Parquet "
                                f"export needs numeric rates")
        d = decimal.Decimal(str(v))
        if d != d.quantize(decimal.Decimal(1).scaleb(-RATE_SCALE)) or \
                abs(d) >= decimal.Decimal(10) ** (RATE_PRECISION - RATE_SCALE):
            raise TimelineError(f"{where} {v!r} does not fit a decimal of "
                                f"{RATE_PRECISION} digits with {RATE_SCALE} after the point")
        return float(d)
    if kind == "number":
        # float64: pandas reads it as numbers (a decimal column arrives as `object`)
        if isinstance(v, bool) or not isinstance(v, (int, float, decimal.Decimal)):
            raise TimelineError(f"{where} {str(v)[:40]!r} is not a number")
        return float(v)
    if kind == "bool":
        return bool(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def write_parquet(path: Path, columns: tuple[tuple[str, str], ...], rows: list[tuple]) -> None:
    """Write `rows` (raw values, in `columns` order: (name, kind) pairs) as a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [n for n, _ in columns]
    arrays = []
    for i, (name, kind) in enumerate(columns):
        values = [_value(kind, row[i], f"{path.name}: {row[0]}: {name}") for row in rows]
        arrays.append(pa.array(values, type=_type(pa, kind)))
    table = pa.Table.from_arrays(arrays, names=names)
    # no statistics timestamps or pandas metadata: two exports of one log are byte-identical
    # an open file, not the path: pyarrow encodes a path as strict UTF-8, and a folder name
    # with a byte that is not UTF-8 reaches here as a lone surrogate
    with open(path, "wb") as f:
        pq.write_table(table, f, compression="zstd", write_statistics=True)


def parquet_rows(path: Path) -> int | None:
    """Rows of a Parquet file from its footer; None when pyarrow is missing or it is unreadable."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        with open(path, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    except Exception:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        return -1
