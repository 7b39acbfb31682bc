"""The report as rich tables, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from engine.reports.blocks import Block, Cell, Rate, blocks, show
from engine.reports.report import Report

NUMERIC = int | float


def to_json(report: Report) -> str:
    """The report as indented JSON."""
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"


def to_csv(report: Report) -> str:
    """One section after another: its name, its header row, its rows, a blank line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for block in blocks(report):
        writer.writerow([f"# {block.name}"])
        writer.writerow(block.header)
        writer.writerows([_csv_cell(c) for c in row] for row in block.rows)
        writer.writerow([])
    return out.getvalue()


def _csv_cell(cell: Cell) -> str | int | float:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return round(cell, 6 if isinstance(cell, Rate) else 4)
    return cell


def to_tables(report: Report) -> RenderableType:
    """Every section as a rich table with its notes below."""
    return Group(*(_table(block) for block in blocks(report)))


def _table(block: Block) -> RenderableType:
    table = Table(title=block.title, title_justify="left")
    for i, heading in enumerate(block.header):
        right = bool(block.rows) and all(isinstance(r[i], NUMERIC | None) for r in block.rows)
        table.add_column(heading, justify="right" if right else "left")
    for row in block.rows:
        table.add_row(*(show(c) for c in row))
    notes = [
        Text(line, style="yellow" if "over" in line or "close" in line else "")
        for line in block.notes
    ]
    return Group(table, *notes, Text(""))


def print_tables(report: Report, console: Console) -> None:
    """Print :func:`to_tables` on ``console``."""
    console.print(to_tables(report))
