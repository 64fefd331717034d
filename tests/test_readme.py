"""The README stays true: its test command is what CI runs, and every knob is documented."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from bots.admin_settings import AdminSettings
from bots.api_settings import ApiSettings
from bots.channel_settings import ChannelSettings
from bots.worker_settings import WorkerSettings
from feedback.settings import FeedbackSettings
from routing.execution_settings import ExecutionSettings, ProviderCredentials
from routing.settings import RoutingSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTINGS: tuple[type[BaseSettings], ...] = (
    RoutingSettings,
    ExecutionSettings,
    ProviderCredentials,
    ApiSettings,
    ChannelSettings,
    FeedbackSettings,
    WorkerSettings,
    AdminSettings,
)


def _setup_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert block is not None, "README must open with a ```sh block of set-up commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    assert len(_setup_commands()) == 2
    assert README.index("```sh") < README.index("\n## ")


def test_ci_runs_the_readme_test_command_and_nothing_else() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line for line in ci if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == [_setup_commands()[1]]


def _variables() -> set[str]:
    """Every environment variable a settings class reads."""
    names: set[str] = set()
    for cls in SETTINGS:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            alias = field.validation_alias or field.alias
            names.add(str(alias).upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


def test_every_variable_is_in_the_readme_and_env_example() -> None:
    example = (ROOT / "deploy" / ".env.example").read_text(encoding="utf-8")
    names = _variables()
    assert len(names) > 40
    assert {n for n in names if f"`{n}`" not in README} == set()
    assert {n for n in names if not re.search(rf"^#? ?{n}=", example, re.MULTILINE)} == set()
