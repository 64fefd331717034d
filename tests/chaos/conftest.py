"""Fixtures of the chaos suite: the `seed` parameter (`--seeds N`, see `tests.chaos.plugin`), the
worker launchers, and the figures every scenario reports (a table at the end of the run, and
JSON in tests/artifacts/chaos-figures.json).

The service launcher takes ~15 s of CPU to import `tierbot`; it is started as soon as the
collected tests show one needs it, so it imports while the first tests run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.plugin import DEFAULT_SEEDS
from tests.chaos.services import Zygote
from tests.chaos.zygote import SERVICE

FIGURES = pytest.StashKey[list[dict[str, object]]]()
LAUNCHER = pytest.StashKey[Zygote]()
EFFECT_WORKER = "tests.chaos.effect_worker"
ARTIFACT = Path("tests") / "artifacts" / "chaos-figures.json"
Report = Callable[[dict[str, object]], None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes `seed` once per seed, 1..N."""
    if "seed" in metafunc.fixturenames:
        count = int(metafunc.config.getoption("seeds", default=DEFAULT_SEEDS))
        metafunc.parametrize("seed", range(1, count + 1), ids=lambda s: f"seed{s}")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start importing the service launcher now if a collected test will use it."""
    if any("service_launcher" in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[LAUNCHER] = Zygote(SERVICE)


def pytest_unconfigure(config: pytest.Config) -> None:
    if (launcher := config.stash.get(LAUNCHER, None)) is not None:
        launcher.close()


@pytest.fixture(scope="session")
def service_launcher(request: pytest.FixtureRequest) -> Zygote:
    """Forks `tierbot` processes (`bots.__main__`); one for the run, ended with it."""
    config = request.config
    if LAUNCHER not in config.stash:
        config.stash[LAUNCHER] = Zygote(SERVICE)
    return config.stash[LAUNCHER]


@pytest.fixture(scope="session")
def effect_launcher() -> Iterator[Zygote]:
    """Forks `tests.chaos.effect_worker` processes (light: ~2 s to import)."""
    launcher = Zygote((EFFECT_WORKER,))
    yield launcher
    launcher.close()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """Record one scenario's figures for the summary table and the JSON artifact."""
    rows = request.config.stash.setdefault(FIGURES, [])

    def add(figures: dict[str, object]) -> None:
        rows.append({"test": request.node.nodeid, **figures})

    return add


@pytest.fixture
def reported(request: pytest.FixtureRequest) -> list[dict[str, object]]:
    """Every scenario's figures recorded so far in this session (the chaos run's)."""
    return request.config.stash.setdefault(FIGURES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line of figures per scenario run."""
    rows = terminalreporter.config.stash.get(FIGURES, [])
    if not rows:
        return
    terminalreporter.section("chaos figures")
    for row in rows:
        figures = " ".join(f"{k}={v}" for k, v in row.items() if k != "test")
        terminalreporter.write_line(f"{str(row['test']).split('::')[-1]}: {figures}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the figures as JSON for the closing note."""
    rows = session.config.stash.get(FIGURES, [])
    if rows:
        path = session.config.rootpath / ARTIFACT
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
