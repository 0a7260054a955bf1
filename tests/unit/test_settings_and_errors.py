"""Settings precedence and validation; errors that survive a process boundary."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from flowhost.cli.running import parse_input
from flowhost.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    FlowNotFoundError,
    InvalidInputError,
)
from flowhost.settings import load_settings
from flowhost.workers.commands import RuntimeCommands


def test_defaults_mean_embedded_postgres(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.embedded and settings.database_url is None
    assert settings.state_dir == tmp_path.resolve() / ".flowhost"
    assert settings.functions_path == tmp_path.resolve() / "functions"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "flowhost.toml").write_text(
        '[flowhost]\nconcurrency = 4\ndatabase_url = "postgresql://file/db"\n'
    )
    settings = load_settings(tmp_path, environ={"FLOWHOST_CONCURRENCY": "6"})
    assert settings.concurrency == 6
    assert settings.database_url == "postgresql://file/db"
    env = {"DATABASE_URL": "postgresql://env/db", "FLOWHOST_DATABASE_URL": "postgresql://fh/db"}
    assert load_settings(tmp_path, environ=env).database_url == "postgresql://fh/db"
    assert load_settings(tmp_path, environ={}, concurrency=9).concurrency == 9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense = 1\n", "unknown setting 'nonsense'"),
        ("concurrency = 'many'\n", "concurrency: expected int"),
        ("concurrency = 0\n", "concurrency must be positive"),
        ("database_url = 'mysql://x'\n", "postgresql:// URL"),
        ("concurrency = \n", "flowhost.toml"),
        ("api_token = 'short'\n", "api_token must be at least 16 characters"),
        ("api_token = 'has a space in it!!'\n", "api_token must be printable ASCII"),
        ("metrics_token = 'short'\n", "metrics_token must be at least 16 characters"),
        ("max_body_bytes = 0\n", "max_body_bytes must be positive"),
    ],
)
def test_bad_configuration_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "flowhost.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        load_settings(tmp_path, environ={})


@pytest.mark.parametrize(
    "error",
    [
        FlowNotFoundError("no flow 'x'", flow="x"),
        DatabaseUnavailableError(),
        InvalidInputError("bad"),
    ],
)
def test_errors_round_trip_through_pickle(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert copy.details == error.details  # type: ignore[attr-defined]


def test_default_message_is_the_docstring() -> None:
    assert str(DatabaseUnavailableError()) == "The database cannot be reached."


def test_input_is_json_text_or_a_file(tmp_path: Path) -> None:
    assert parse_input(None) == {}
    assert parse_input('{"a": [1, 2]}') == {"a": [1, 2]}
    (tmp_path / "in.json").write_text('{"b": true}')
    assert parse_input(f"@{tmp_path / 'in.json'}") == {"b": True}
    with pytest.raises(InvalidInputError, match=r"not valid JSON: Expecting .* line 1 column 2"):
        parse_input("{nope")
    with pytest.raises(InvalidInputError, match="cannot read input file"):
        parse_input(f"@{tmp_path / 'missing.json'}")


def test_the_api_token_is_read_and_never_shown(tmp_path: Path) -> None:
    token = "s3cr3t-token-0123456789"
    settings = load_settings(tmp_path, environ={"FLOWHOST_API_TOKEN": token})
    assert settings.api_token == token
    assert token not in repr(settings)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(tmp_path, environ={"FLOWHOST_API_TOKEN": token[:8]})
    assert token[:8] not in str(refused.value)
    assert load_settings(tmp_path, environ={"FLOWHOST_MAX_BODY_BYTES": "10"}).max_body_bytes == 10
    scraper = load_settings(tmp_path, environ={"FLOWHOST_METRICS_TOKEN": token})
    assert scraper.metrics_token == token and token not in repr(scraper)


def test_python_children_import_the_checkouts_sdk_or_the_one_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = RuntimeCommands()
    monkeypatch.delenv("FLOWHOST_PYTHON_SDK", raising=False)
    checkout = Path(__file__).resolve().parents[2] / "sdk-python" / "src"
    assert commands.python_sdk_path() == checkout
    (tmp_path / "flowhost_worker").mkdir()
    (tmp_path / "flowhost_worker" / "child.py").touch()
    monkeypatch.setenv("FLOWHOST_PYTHON_SDK", str(tmp_path))
    assert commands.python_sdk_path() == tmp_path
    monkeypatch.setenv("FLOWHOST_PYTHON_SDK", str(tmp_path / "flowhost_worker"))
    with pytest.raises(ConfigurationError, match="does not hold flowhost_worker"):
        commands.python_sdk_path()
