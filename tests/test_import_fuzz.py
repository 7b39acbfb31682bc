"""Bad input never crashes an import: random bytes and mangled exports end in an import
(good rows kept, bad rows rejected with a line) or one clear error, never anything else."""

from __future__ import annotations

from pathlib import Path

from _support import STARTER_CSV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contacts import ContactImporter, load_mapping
from engine.errors import InputFileError
from engine.stages import load_pipeline
from engine.storage import create_database_engine, upgrade
from engine.workspace import Workspace, init_workspace

_HEAD = STARTER_CSV.read_bytes()[:4000]  # the header and a few dozen real rows
_NOISE = st.sampled_from([b",", b";", b"\t", b'"', b"\n", b"\r\n", b"\xef\xbb\xbf", b"\xff",
                          b"\x00", b"@", b"{", b"}", b"x" * 200, b"\xc3\xa6"])  # fmt: skip


def test_mangled_exports_are_imported_or_refused_with_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    init_workspace(root)
    workspace = Workspace(root)
    pipeline = load_pipeline(workspace)
    mapping = load_mapping(root / "config" / "crm.yaml", workspace, pipeline)
    engine = create_database_engine(f"sqlite:///{tmp_path / 'fuzz.db'}")
    upgrade(engine)
    importer = ContactImporter(engine, pipeline, mapping, batch_size=7)

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(
        cut=st.integers(0, len(_HEAD)),
        inserts=st.lists(st.tuples(st.integers(0, len(_HEAD)), _NOISE), max_size=6),
        suffix=st.sampled_from([".csv", ".jsonl"]),
    )
    def check(cut: int, inserts: list[tuple[int, bytes]], suffix: str) -> None:
        data = bytearray(_HEAD[:cut])
        for position, noise in sorted(inserts, reverse=True):
            data[position:position] = noise
        source = tmp_path / f"mangled{suffix}"
        source.write_bytes(bytes(data))
        try:
            summary = importer.run(source, tmp_path / "rejects.csv")
        except InputFileError as exc:
            assert str(source) in str(exc)  # names the file
            return
        assert summary.rows >= summary.rejected
        assert summary.created + summary.updated + summary.unchanged <= summary.rows

    try:
        check()
    finally:
        engine.dispose()
