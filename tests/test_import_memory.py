"""A large export is streamed: peak memory does not grow with the number of rows.

Each import runs in a fresh interpreter, which reports its peak resident set size
(``ru_maxrss`` of itself plus its children, in case the importer reads in a child
process). Memory is not timing, so the comparison holds on a busy machine too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _support import generate_export

from engine.workspace import init_workspace

LARGE, SMALL = 200_000, 20_000

IMPORT_AND_MEASURE = """
import json, resource, sys
from pathlib import Path

from engine.contacts import CRM_FILE, ContactImporter, load_mapping
from engine.settings import load_settings
from engine.stages import load_pipeline
from engine.storage import create_database_engine, upgrade
from engine.workspace import Workspace

root, export, database = (Path(arg) for arg in sys.argv[1:4])
workspace = Workspace(root)
pipeline = load_pipeline(workspace)
mapping = load_mapping(root / CRM_FILE, workspace, pipeline)
engine = create_database_engine(f"sqlite:///{database}")
upgrade(engine)
batch_size = load_settings(workspace).imports.batch_size  # as `contacts import` uses
# both sizes read in a child process, so the two runs have the same shape
summary = ContactImporter(engine, pipeline, mapping, batch_size).run(
    export, export.with_name(export.name + ".rejects.csv"), parallel=True
)
engine.dispose()
peak_kib = (
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
)
print(json.dumps({"peak_kib": peak_kib, "created": summary.created,
                  "rejected": summary.rejected}))
"""


def _import_in_fresh_process(workspace: Path, export: Path, database: Path) -> dict[str, int]:
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_AND_MEASURE, str(workspace), str(export), str(database)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=workspace,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, int] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_number_of_rows(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    init_workspace(workspace)
    large = generate_export(tmp_path / "large.csv", contacts=LARGE)
    small = generate_export(tmp_path / "small.csv", contacts=SMALL)

    small_run = _import_in_fresh_process(workspace, small, tmp_path / "small.db")
    large_run = _import_in_fresh_process(workspace, large, tmp_path / "large.db")

    # every row was imported (the measurement is of a real, complete import)
    assert (small_run["created"], small_run["rejected"]) == (SMALL, 0)
    assert (large_run["created"], large_run["rejected"]) == (LARGE, 0)
    # ten times the rows, nowhere near ten times the memory
    limit_kib = 1.5 * small_run["peak_kib"] + 30 * 1024
    assert large_run["peak_kib"] < limit_kib, (
        f"peak RSS {large_run['peak_kib'] / 1024:.0f} MiB for {LARGE:,} rows vs "
        f"{small_run['peak_kib'] / 1024:.0f} MiB for {SMALL:,} rows "
        f"(limit {limit_kib / 1024:.0f} MiB)"
    )
