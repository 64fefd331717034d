"""Feedback settings: defaults, DATABASE_URL forms, and start-up errors that name the variable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from feedback.errors import FeedbackConfigError
from feedback.settings import (
    DEFAULT_DATABASE_URL,
    DEV_ID_HASH_KEY,
    FeedbackSettings,
    load_feedback_settings,
)
from feedback.store import FeedbackStore


@pytest.fixture(autouse=True)
def _no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_defaults_are_the_embedded_sqlite_file_and_thirty_days_of_text() -> None:
    settings = load_feedback_settings()
    assert settings.database_url.get_secret_value() == DEFAULT_DATABASE_URL
    assert settings.text_retention_days == 30
    assert (settings.feedback_batch_size, settings.feedback_buffer_limit) == (200, 10_000)
    assert settings.uses_dev_key
    assert settings.id_hash_key.get_secret_value() == DEV_ID_HASH_KEY


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("postgresql://bot:pw@db:5432/tierbot", "postgresql+asyncpg://bot:pw@db:5432/tierbot"),
        ("postgres://bot@db/tierbot", "postgresql+asyncpg://bot@db/tierbot"),
        ("postgresql+asyncpg://bot@db/tierbot", "postgresql+asyncpg://bot@db/tierbot"),
        ("sqlite:///var/feedback.db", "sqlite+aiosqlite:///var/feedback.db"),
    ],
)
def test_database_url_gets_the_async_driver(
    monkeypatch: pytest.MonkeyPatch, url: str, normalised: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_feedback_settings().database_url.get_secret_value() == normalised


def test_the_displayed_url_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:hunter2@db/tierbot")
    settings = load_feedback_settings()
    assert settings.database_display == "postgresql+asyncpg://bot:***@db/tierbot"
    assert "hunter2" not in repr(settings)


def test_our_knobs_are_read_from_tierbot_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERBOT_ID_HASH_KEY", "a-real-secret-of-some-length")
    monkeypatch.setenv("TIERBOT_TEXT_RETENTION_DAYS", "0")
    monkeypatch.setenv("TIERBOT_FEEDBACK_BATCH_SIZE", "50")
    settings = load_feedback_settings()
    assert (settings.text_retention_days, settings.feedback_batch_size) == (0, 50)
    assert not settings.uses_dev_key


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL: unsupported database 'mysql'"),
        ("DATABASE_URL", "::not a url::", "DATABASE_URL: not a database URL"),
        ("TIERBOT_TEXT_RETENTION_DAYS", "-1", "TIERBOT_TEXT_RETENTION_DAYS: Input should be"),
        ("TIERBOT_ID_HASH_KEY", "short", "TIERBOT_ID_HASH_KEY: must be at least 16 characters"),
        ("TIERBOT_FEEDBACK_BATCH_SIZE", "many", "TIERBOT_FEEDBACK_BATCH_SIZE: Input should be"),
        ("TIERBOT_FEEDBACK_BUFFER_LIMIT", "0", "TIERBOT_FEEDBACK_BUFFER_LIMIT: Input should be"),
    ],
)
def test_a_bad_variable_fails_with_its_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(FeedbackConfigError, match=message):
        load_feedback_settings()


def test_a_rejected_key_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERBOT_ID_HASH_KEY", "s3cr3t-short")
    with pytest.raises(FeedbackConfigError) as failed:
        load_feedback_settings()
    assert "s3cr3t" not in str(failed.value)


async def test_opening_with_the_dev_key_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = FeedbackSettings.model_validate(
        {"database_url": f"sqlite+aiosqlite:///{tmp_path}/f.sqlite3"}
    )
    with caplog.at_level(logging.WARNING, logger="feedback.store"):
        store = await FeedbackStore.open(settings)
        await store.aclose()
    assert "TIERBOT_ID_HASH_KEY is the development default" in caplog.text
