"""Bad input never crashes: random YAML in every workspace file the engine reads gives
problems or nothing, never an exception."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.check import check_workspace
from engine.workspace import Workspace, init_workspace

_KEYS = st.sampled_from([
    # stages.yaml, crm.yaml, settings.yaml
    "stages", "id", "name", "kind", "initial", "transitions", "on", "to", "from", "link",
    "intent", "contact", "email", "owner", "account", "attributes", "account_attributes",
    "type", "columns", "database_url", "default_timezone", "company", "imports", "batch_size",
    "secret_key",
    # segments
    "where", "all", "any", "not", "segment", "event", "within", "count", "sequence", "step",
    "in_sequence", "title", "stage", "account.employees", "attributes.lead_score",
    "attributes.last_meeting", "time_in_stage", "created_at", "eq", "ne", "in", "between",
    "contains", "contains_any", "exists", "before", "after", "x",
])  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from(["research", "won", "clicked", "int", "Email", "sqlite:///x.db", "bad/tz",
                     "", "qualifcation", "14d", "3 days", "30d ago", "2026-01-01", "opened"]),
)  # fmt: skip
_TREES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=4)
    ),
    max_leaves=14,
)
_FILES = ["config/stages.yaml", "config/crm.yaml", "config/settings.yaml", "segments/fuzz.yaml"]


def _dump(data: Any) -> str:
    buffer = StringIO()
    YAML().dump(data, buffer)
    return buffer.getvalue()


def test_random_yaml_in_any_workspace_file_is_reported_not_raised(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    init_workspace(root)
    originals = {name: (root / name).read_text(encoding="utf-8") for name in _FILES[:3]}

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(file=st.sampled_from(_FILES), data=_TREES)
    def check(file: str, data: Any) -> None:
        for name, text in originals.items():
            (root / name).write_text(text, encoding="utf-8")
        (root / "segments" / "fuzz.yaml").unlink(missing_ok=True)
        (root / file).write_text(_dump(data), encoding="utf-8")
        result = check_workspace(Workspace(root))  # must not raise
        assert all(problem.path in (file, *_FILES) for problem in result.problems)

    check()


def test_bytes_that_are_not_yaml_are_reported_with_the_file(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    init_workspace(root)
    (root / "config" / "stages.yaml").write_bytes(b"stages: [\x00\xff\xfe: {")
    (root / "segments" / "broken.yaml").write_bytes(b"\xff\xfe\x00garbage")

    result = check_workspace(Workspace(root))

    assert {p.path for p in result.problems} >= {"config/stages.yaml", "segments/broken.yaml"}
