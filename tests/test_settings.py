"""Settings resolve in one order: defaults < settings.yaml < SALESCYCLE_* < explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support import explain, invoke
from ruamel.yaml import YAML
from sqlalchemy.engine import make_url

from engine.errors import ConfigurationError, WorkspaceError
from engine.settings import CompanySettings, ImportSettings, load_settings
from engine.storage import resolve_database_url
from engine.wiring import Runtime
from engine.workspace import Workspace

LAYERED_FILE = """\
default_locale: da
company:
  name: File Co
  postal_address: File Street 1, 1000 File City
imports:
  batch_size: 10
"""


def _write_settings(workspace: Path, text: str) -> None:
    (workspace / "config" / "settings.yaml").write_text(text, encoding="utf-8")


def test_defaults_apply_without_a_settings_file(workspace: Path) -> None:
    starter = load_settings(Workspace(workspace))
    (workspace / "config" / "settings.yaml").unlink()

    settings = load_settings(Workspace(workspace))

    assert settings.database_url == "sqlite:///var/salescycle.db"
    assert settings.default_timezone == "Europe/Copenhagen"
    assert settings.default_locale == "en"
    assert settings.imports.batch_size == ImportSettings().batch_size
    assert settings.company == CompanySettings()
    assert settings.company != starter.company  # the starter file's company is gone
    assert settings.secret_key is None


def test_the_file_overrides_defaults_key_by_key(workspace: Path) -> None:
    _write_settings(workspace, LAYERED_FILE)

    settings = load_settings(Workspace(workspace))

    assert settings.default_locale == "da"
    assert settings.imports.batch_size == 10
    assert settings.company.name == "File Co"
    assert settings.default_timezone == "Europe/Copenhagen"  # not in the file: the default
    assert settings.company.website == "https://example.com"  # a nested default survives


def test_the_environment_overrides_the_file(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_settings(workspace, LAYERED_FILE)
    monkeypatch.setenv("SALESCYCLE_DEFAULT_LOCALE", "sv")
    monkeypatch.setenv("SALESCYCLE_IMPORTS__BATCH_SIZE", "5")
    monkeypatch.setenv("SALESCYCLE_COMPANY__NAME", "Env Co")

    settings = load_settings(Workspace(workspace))

    assert settings.default_locale == "sv"
    assert settings.imports.batch_size == 5
    assert settings.company.name == "Env Co"
    # a nested variable replaces one key, not the whole section from the file
    assert settings.company.postal_address == "File Street 1, 1000 File City"


def test_explicit_overrides_beat_the_environment(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_settings(workspace, LAYERED_FILE)
    monkeypatch.setenv("SALESCYCLE_DEFAULT_LOCALE", "sv")
    monkeypatch.setenv("SALESCYCLE_IMPORTS__BATCH_SIZE", "5")

    settings = load_settings(
        Workspace(workspace), {"default_locale": "nb", "imports": {"batch_size": 7}}
    )

    assert settings.default_locale == "nb"
    assert settings.imports.batch_size == 7
    assert settings.company.name == "File Co"  # untouched layers still show through


def test_nested_environment_variable_for_the_batch_size(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = (workspace / "config" / "settings.yaml").read_text(encoding="utf-8")
    in_file = YAML(typ="safe", pure=True).load(settings_file)["imports"]["batch_size"]
    assert in_file != 5
    assert load_settings(Workspace(workspace)).imports.batch_size == in_file
    monkeypatch.setenv("SALESCYCLE_IMPORTS__BATCH_SIZE", "5")

    assert load_settings(Workspace(workspace)).imports.batch_size == 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SALESCYCLE_IMPORTS__BATCH_SIZE", "lots"),
        ("SALESCYCLE_IMPORTS__BATCH_SIZE", "0"),
        ("SALESCYCLE_DEFAULT_TIMEZONE", "Mars/Olympus_Mons"),
        ("SALESCYCLE_DEFAULT_LOCALE", "english please"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as raised:
        load_settings(Workspace(workspace))

    assert variable in str(raised.value)


def test_a_bad_environment_value_is_one_line_on_the_command_line(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESCYCLE_IMPORTS__BATCH_SIZE", "lots")

    result = invoke("pipeline", "--workspace", workspace)

    assert result.exit_code == ConfigurationError.exit_code, explain(result)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "SALESCYCLE_IMPORTS__BATCH_SIZE" in lines[0]


def test_secrets_come_from_the_environment_and_are_not_shown(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESCYCLE_SECRET_KEY", "s3cret-value-of-32-characters!!")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.key-value")

    settings = load_settings(Workspace(workspace))

    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "s3cret-value-of-32-characters!!"
    assert settings.sendgrid_api_key is not None
    assert settings.sendgrid_api_key.get_secret_value() == "SG.key-value"
    assert "s3cret-value" not in repr(settings)
    assert "SG.key-value" not in repr(settings)


def test_a_secret_in_the_file_is_refused(workspace: Path) -> None:
    _write_settings(workspace, "default_locale: da\nsecret_key: x\n")

    with pytest.raises(WorkspaceError) as raised:
        load_settings(Workspace(workspace))

    [problem] = raised.value.problems
    assert (problem.path, problem.line) == ("config/settings.yaml", 2)
    assert "SALESCYCLE_SECRET_KEY" in problem.message


# --------------------------------------------------------------------------
# the database URL


def test_a_relative_sqlite_url_resolves_inside_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()

    resolved = resolve_database_url("sqlite:///var/salescycle.db", root)

    assert make_url(resolved).get_backend_name() == "sqlite"
    assert make_url(resolved).database == str(root / "var" / "salescycle.db")
    assert (root / "var").is_dir()  # created, so SQLite can make the file


def test_an_absolute_sqlite_url_stays_where_it_is(tmp_path: Path) -> None:
    elsewhere = tmp_path / "data" / "crm.db"

    resolved = resolve_database_url(f"sqlite:///{elsewhere}", tmp_path / "ws")

    assert make_url(resolved).database == str(elsewhere)


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "postgresql+psycopg://sales:pw@db.internal:5432/sales"],
)
def test_other_urls_are_kept_as_they_are(tmp_path: Path, url: str) -> None:
    assert make_url(resolve_database_url(url, tmp_path)) == make_url(url)


def test_an_unsupported_database_is_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="valid: sqlite, postgresql"):
        resolve_database_url("mysql://sales@db.internal/sales", tmp_path)


def test_a_malformed_url_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SALESCYCLE_DATABASE_URL"):
        resolve_database_url("not a database url", tmp_path)


def test_the_runtime_resolves_a_relative_url_from_the_environment_in_the_workspace(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("SALESCYCLE_DATABASE_URL", "sqlite:///data/team.db")

    runtime = Runtime.open(workspace)
    try:
        assert make_url(runtime.database_url).database == str(workspace / "data" / "team.db")
    finally:
        runtime.close()


def test_db_upgrade_from_another_folder_creates_the_database_in_the_workspace(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    result = invoke("db", "upgrade", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert (workspace / "var" / "salescycle.db").is_file()
    assert not (elsewhere / "var").exists()
