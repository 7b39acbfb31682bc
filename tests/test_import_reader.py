"""The read side of an import gives the same batches in this process and in a child."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import pytest
from _support import STARTER_CSV

from engine.contacts import load_mapping
from engine.contacts.batches import ReadBatch, read_batches, read_batches_in_child
from engine.contacts.normalise import pack_cells, unpack_cells
from engine.errors import InputFileError
from engine.stages import load_pipeline
from engine.workspace import Workspace


def _flatten(batches: list[ReadBatch]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    rows = [(row.line, row.email) for batch in batches for row in batch.rows]
    rejects = [(line, reason) for batch in batches for line, reason, _ in batch.rejects]
    return rows, rejects


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_child_reads_what_this_process_reads(
    workspace: Path, tmp_path: Path, start_method: str
) -> None:
    # Given the starter export with a duplicate and a bad row appended
    lines = STARTER_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    source = tmp_path / "export.csv"
    source.write_text("".join([*lines, lines[5], lines[7].replace("@", "@@")]), encoding="utf-8")
    mapping = load_mapping(
        workspace / "config" / "crm.yaml", Workspace(workspace), load_pipeline(Workspace(workspace))
    )

    # When it is read here and in a child process (forked or spawned)
    here = list(read_batches(source, "csv", mapping, 300))
    method: Literal["fork", "spawn"] = "fork" if start_method == "fork" else "spawn"
    there = list(read_batches_in_child(source, "csv", mapping, 300, method))

    # Then the rows, the rejects and the header are the same
    rows, rejects = _flatten(here)
    assert _flatten(there) == (rows, rejects)
    assert len(rows) == len(lines) - 1
    assert [line for line, _ in rejects] == [len(lines) + 1, len(lines) + 2]
    assert there[-1].header == here[-1].header == lines[0].rstrip("\n").split(",")


def test_a_child_reports_a_file_that_breaks_off_after_its_good_rows(
    workspace: Path, tmp_path: Path
) -> None:
    # Given a file whose third data row holds a field beyond the csv module's size limit
    lines = STARTER_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    source = tmp_path / "broken.csv"
    huge = "x" * (csv.field_size_limit() + 1)
    source.write_text("".join([*lines[:3], f"{huge}\n", *lines[3:6]]), encoding="utf-8")
    mapping = load_mapping(
        workspace / "config" / "crm.yaml", Workspace(workspace), load_pipeline(Workspace(workspace))
    )

    # When a child reads it, the rows before the break arrive, then the error names the line
    batches: list[ReadBatch] = []
    with pytest.raises(InputFileError, match=r"broken\.csv:4: "):
        batches.extend(read_batches_in_child(source, "csv", mapping, 100, "spawn"))
    assert [row.line for batch in batches for row in batch.rows] == [2, 3]


def test_cells_holding_nul_survive_the_trip_to_the_writing_process() -> None:
    for cells in (["a", "b"], ["a\0b", "c"], ["", ""], ["\x01json:x"], ["only"]):
        assert unpack_cells(pack_cells(cells)) == cells
