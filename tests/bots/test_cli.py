"""The `tierbot` command line: policy show, route explain (message and JSONL), eval routing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bots.__main__ import main
from bots.route_cli import MASK, explain_lines, settings_table
from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bots` as a user would, with a clean TIERBOT_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "bots", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean | (env or {}),
        timeout=60,
        check=False,
    )


def test_policy_show_prints_the_ladder_and_every_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERBOT_DEFAULT_MAX_TIER", "mid")
    assert main(["policy", "show"]) == 0
    out = capsys.readouterr().out
    assert "  1 fast" in out
    assert "  3 frontier" in out
    assert "entitlement: default up to mid, premium up to frontier" in out
    assert 'TIERBOT_DEFAULT_MAX_TIER="mid"' in out
    assert "TIERBOT_COMPLEXITY_THRESHOLDS=" in out
    assert "single-model mode" not in out


def test_policy_show_names_single_model_mode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERBOT_SINGLE_TIER", "mid")
    assert main(["policy", "show"]) == 0
    assert "single-model mode: every message on mid" in capsys.readouterr().out


def test_settings_table_masks_secrets() -> None:
    class Keys(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_")
        api_key: SecretStr = SecretStr("sk-live-123")
        empty_key: SecretStr = SecretStr("")
        name: str = "n"

    rows = dict(settings_table([Keys()]))
    assert rows == {"X_API_KEY": MASK, "X_EMPTY_KEY": '""', "X_NAME": '"n"'}
    assert "sk-live-123" not in repr(rows)


def test_route_explain_a_message_for_a_person(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "explain", "hi there"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tier: 1 (fast)")
    assert "[base_tier]" in out


def test_route_explain_json_follows_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "explain", "--json", "--user", "u", "--channel", "web", "hello"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert sorted(line) == ["confidence", "id", "reasons", "scores", "tier"]
    assert sorted(line["scores"]) == ["complexity", "frustration", "history_tokens", "rephrase"]
    assert isinstance(line["scores"]["history_tokens"], int)
    assert all(sorted(r) == ["code", "text"] for r in line["reasons"])


JSONL_GOOD = {
    "id": "a",
    "messages": [
        {"role": "user", "content": "How do I reset my password?", "ts": 1},
        {"role": "assistant", "content": "Use the link.", "ts": 2, "tier": 1},
        {"role": "user", "content": "That's wrong!!! You didn't answer me", "ts": 3},
    ],
}
JSONL_LINES = [
    json.dumps(JSONL_GOOD),
    "{not json",
    json.dumps({"id": 2, "messages": []}),
    json.dumps({"id": 3, "messages": [{"role": "system", "content": "x"}]}),
    "",
    json.dumps({"id": 4, "messages": [{"role": "user", "content": 5}]}),
    json.dumps({"id": [5], "messages": [{"role": "user", "content": "thanks"}]}),
    json.dumps({"id": 6, "messages": [{"role": "user", "content": "x", "ts": "NaN"}]}),
]


def test_route_explain_jsonl_reports_bad_lines_and_goes_on() -> None:
    router = Router(
        policy=build_policy(load_routing_settings()), complexity=load_complexity_model()
    )
    out, err = io.StringIO(), io.StringIO()
    assert explain_lines(router, [line + "\n" for line in JSONL_LINES], out, err) == 5
    decided = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(o["id"], o["tier"]) for o in decided] == [("a", 2), ([5], 1)]
    assert "escalate_failed_answer" in [r["code"] for r in decided[0]["reasons"]]
    errors = err.getvalue().splitlines()
    assert [e.split(":")[0] for e in errors[:-1]] == [
        "line 2",
        "line 3",
        "line 4",
        "line 6",
        "line 8",
    ]
    assert "messages" in errors[1]
    assert "role" in errors[2]
    assert errors[-1] == "5 of 7 lines could not be read"


def test_route_explain_reads_stdin_when_no_message_is_given() -> None:
    done = run_cli("route", "explain", stdin="\n".join(JSONL_LINES[:2]) + "\n")
    assert done.returncode == 1
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["a"]
    assert done.stderr.splitlines()[0].startswith("line 2: ")


def test_a_bad_variable_stops_start_up_naming_it() -> None:
    done = run_cli("policy", "show", env={"TIERBOT_COMPLEXITY_THRESHOLDS": "0.9,0.1"})
    assert done.returncode == 2
    assert done.stderr.startswith("tierbot: invalid configuration: TIERBOT_COMPLEXITY_THRESHOLDS")
    assert done.stdout == ""


def _outcomes(tmp_path: Path) -> Path:
    rows = [
        {"split": "test", "prompt": "hi", "scores": {"cheap": 1.0, "strong": 1.0}},
        {
            "split": "test",
            "prompt": "Prove that there are infinitely many primes, step by step. " * 5,
            "scores": {"cheap": 0.0, "strong": 1.0},
        },
        {"split": "train", "prompt": "ignored", "scores": {"cheap": 0.0, "strong": 1.0}},
    ]
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_eval_routing_prints_a_table_and_writes_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "curve.png"
    args = ["eval", "routing", str(_outcomes(tmp_path)), "--cheap", "cheap", "--strong", "strong"]
    assert main([*args, "--no-progress", "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    assert "2 prompts" in captured.out
    assert "APGR" in captured.out
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_eval_routing_json_and_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _outcomes(tmp_path)
    assert (
        main(
            [
                "eval",
                "routing",
                str(path),
                "--cheap",
                "cheap",
                "--strong",
                "strong",
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["n"], report["quality_cheap"], report["quality_strong"]) == (2, 0.5, 1.0)
    assert main(["eval", "routing", str(tmp_path / "missing.jsonl"), "--no-progress"]) == 1
    assert "cannot read outcomes file" in capsys.readouterr().err
