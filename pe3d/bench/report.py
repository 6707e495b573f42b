"""Benchmark result tables: typed columns, Markdown and CSV writers, and the finiteness check.

A :class:`ResultTable` holds rows of plain values keyed by column. A metric cell may be a
float or a :class:`Missing` (a NaN with the reason it is missing, e.g. "faces found 0/16"):
the reason is printed in the Markdown table and in the CSV's ``notes`` column, and
:meth:`ResultTable.unexplained_nonfinite` lists metric cells that are not finite *without*
such a reason (what the CI benchmarks assert is empty).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pe3d.io import atomic_write_text


@dataclass(frozen=True)
class Missing:
    """A metric that could not be measured, and why (shown instead of the number)."""

    reason: str

    def __float__(self) -> float:
        return math.nan


@dataclass(frozen=True)
class Column:
    """One table column: ``key`` in the rows, ``header`` as printed, ``fmt`` for numbers.

    ``metric`` columns hold numbers that must be finite (or :class:`Missing`); label
    columns hold text. ``better`` (``"higher"``/``"lower"``/``""``) adds an arrow to the header.
    """

    key: str
    header: str
    fmt: str = "{:.3f}"
    metric: bool = True
    better: str = ""

    def title(self) -> str:
        """Header with its arrow."""
        arrow = {"higher": " ↑", "lower": " ↓"}.get(self.better, "")
        return f"{self.header}{arrow}"

    def render(self, value: Any) -> str:
        """Markdown text of one cell."""
        if isinstance(value, Missing):
            return f"n/a ({value.reason})"
        if value is None:
            return "–"
        if self.metric and isinstance(value, (int, float)):
            return "NaN" if math.isnan(float(value)) else self.fmt.format(value)
        return str(value)


def label(key: str, header: str) -> Column:
    """A text column (method, style, ...)."""
    return Column(key, header, fmt="{}", metric=False)


@dataclass
class ResultTable:
    """Rows of one benchmark table plus the notes printed under it."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **values: Any) -> None:
        """Append a row; every key must be a column."""
        unknown = sorted(set(values) - {c.key for c in self.columns})
        if unknown:
            raise KeyError(f"table {self.title!r}: no column(s) {unknown}")
        self.rows.append(values)

    def add_known(self, values: dict[str, Any]) -> None:
        """Append a row from ``values``, keeping only the keys that are columns."""
        keys = {c.key for c in self.columns}
        self.rows.append({key: value for key, value in values.items() if key in keys})

    def metric_columns(self) -> list[Column]:
        """The columns holding numbers."""
        return [c for c in self.columns if c.metric]

    def unexplained_nonfinite(self) -> list[str]:
        """``"row i / column"`` for every metric cell that is absent or non-finite without a reason."""
        bad = []
        for i, row in enumerate(self.rows):
            for column in self.metric_columns():
                value = row.get(column.key)
                if isinstance(value, Missing) and value.reason:
                    continue
                if value is None or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                    bad.append(f"row {i} / {column.key} = {value!r}")
        return bad

    def to_markdown(self) -> str:
        """The table as GitHub Markdown (title as a heading, notes as a list below)."""
        lines = [f"### {self.title}", "", "| " + " | ".join(c.title() for c in self.columns) + " |"]
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(c.render(row.get(c.key)) for c in self.columns) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """CSV with one column per table column (raw numbers, NaN when missing) and a ``notes`` column."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.key for c in self.columns] + ["notes"])
        for row in self.rows:
            cells, notes = [], []
            for column in self.columns:
                value = row.get(column.key)
                if isinstance(value, Missing):
                    notes.append(f"{column.key}: {value.reason}")
                    value = math.nan
                cells.append("" if value is None else (repr(float(value)) if isinstance(value, float) else value))
            writer.writerow(cells + ["; ".join(notes)])
        return buffer.getvalue()


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``results.csv`` as dicts of strings (for tests and comparisons)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def slug(text: str) -> str:
    """File-name form of a title: lower case, runs of other characters become ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


def write_report(out: Path, header: str, tables: list[ResultTable], figures: list[Path]) -> dict[str, Path]:
    """Write ``results.md`` (header, every table, figure links) and one CSV per table:
    ``results.csv`` for the first (main) table, ``results-<slug of title>.csv`` for the others.
    Returns the written paths by name."""
    parts = [header.rstrip() + "\n"]
    parts += [table.to_markdown() for table in tables]
    if figures:
        parts.append("### Figures\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in figures) + "\n")
    written = {"results.md": atomic_write_text(out / "results.md", "\n".join(parts))}
    for index, table in enumerate(tables):
        name = "results.csv" if index == 0 else f"results-{slug(table.title)}.csv"
        written[name] = atomic_write_text(out / name, table.to_csv())
    return written


@dataclass
class BenchOutput:
    """What one benchmark produced: its tables (the first is the main one) and figure files."""

    tables: list[ResultTable]
    figures: list[Path] = field(default_factory=list)
