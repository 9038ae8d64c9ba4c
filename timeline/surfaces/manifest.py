"""Export manifests read back: the snapshot `latest` names, and a live log checked against
the head a manifest recorded (`timeline verify --against`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from timeline.errors import IntegrityError, TimelineError

MANIFEST = "manifest.json"
LATEST = "latest"
SNAPSHOT_NAME = re.compile(r"\d{4}-\d{2}-\d{2}(_known_\d{4}-\d{2}-\d{2}|_backfill)?")
NIGHTLY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")  # backfills carry a suffix


def read_latest(out_dir) -> str | None:
    """The snapshot folder name `DIR/latest` points to, or None."""
    try:
        name = (Path(out_dir) / LATEST).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name if SNAPSHOT_NAME.fullmatch(name) else None


def read_manifest(folder: Path) -> dict | None:
    """A snapshot folder's manifest as a dict, or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


HASH = re.compile(r"[0-9a-f]{64}")
MAX_POSITION = 2 ** 63 - 1  # positions are 64-bit integers on every backend


def manifest_head(doc, manifest: str) -> tuple[int, str]:
    """The (position, hash) a manifest records; TimelineError naming the bad value."""
    if not isinstance(doc, dict):
        raise TimelineError(f"{manifest} is not an export manifest (a JSON "
                            f"{type(doc).__name__}, not an object)")
    head = doc["head"] if isinstance(doc.get("head"), dict) else \
        {"position": doc.get("head_position"), "hash": doc.get("head_hash")}
    pos, want = head.get("position"), head.get("hash")
    if pos is None or want is None:
        raise TimelineError(f"{manifest} is not an export manifest (no head position and "
                            f"hash)")
    if not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos <= MAX_POSITION:
        shown = repr(pos) if not isinstance(pos, int) or len(str(pos)) < 40 else \
            f"a {len(str(pos))}-digit number"
        raise TimelineError(f"{manifest}: head position {shown} is not a whole number "
                            f"from 0 to {MAX_POSITION}")
    if not isinstance(want, str) or not HASH.fullmatch(want):
        raise TimelineError(f"{manifest}: head hash {str(want)[:80]!r} is not 64 lowercase "
                            f"hex digits")
    return pos, want


def check_against_manifest(tl, manifest: str) -> str:
    """Compare the log with the head an export manifest recorded; raise IntegrityError."""
    path = Path(manifest)
    if path.is_dir():  # a snapshot folder, or the export folder (its latest snapshot)
        if not (path / MANIFEST).exists():
            path = path / (read_latest(path) or "")
        path = path / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TimelineError(f"cannot read manifest {manifest}: {exc.strerror}") from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise TimelineError(f"{manifest} is not an export manifest (not JSON: "
                            f"{str(exc).splitlines()[0][:80]})") from exc
    pos, want = manifest_head(doc, manifest)
    if pos <= 0:
        return f"; manifest {manifest} records an empty log"
    with tl.snapshot(check=False) as s:  # verify reports a changed head itself
        got = s.hash_at(pos)
        last = s.head().position
    if got is None:
        raise IntegrityError(f"log truncated at position {last + 1}: manifest {manifest} "
                             f"records head position {pos}, the log ends at {last} "
                             f"({pos - last} events missing)", last + 1)
    if got != want:
        raise IntegrityError(f"log altered at or before position {pos}: its hash is {got}, "
                             f"manifest {manifest} recorded {want} (the chain was rewritten)",
                             pos)
    return f"; matches manifest {manifest} at position {pos}"
