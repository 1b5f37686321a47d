"""Versioned SQL migrations shipped in ``store/migrations/<dialect>/NNNN_name.sql``.

Each file is applied once, in version order, inside one transaction together with its
row in ``schema_migrations``; the backend takes a lock first so that several workers
opening the same database at once apply each migration exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Dialect = Literal["sqlite", "postgres"]
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """Statements of a migration file: ``;`` at a line end ends one; ``--`` lines dropped."""
    lines = [ln for ln in sql.splitlines() if not ln.lstrip().startswith("--")]
    out, current = [], []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(current).strip().rstrip(";").strip()
            if stmt:
                out.append(stmt)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        out.append(tail)
    return tuple(out)


def migrations(dialect: Dialect) -> list[Migration]:
    """All shipped migrations of a dialect, in version order."""
    found: list[Migration] = []
    folder = resources.files("tollhouse.store").joinpath("migrations", dialect)
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m is None:
            continue
        found.append(Migration(int(m.group(1)), m.group(2), split_statements(entry.read_text())))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions for {dialect}: {versions}")
    return found
