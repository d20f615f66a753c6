from pathlib import Path

import pytest

from bot.doors.github.settings import ConfigError, load_settings


def test_env_settings_with_rotation() -> None:
    s = load_settings(
        {
            "AGENTPLANE_WEBHOOK_SECRET": "new, old",
            "AGENTPLANE_APP_ID": "12",
            "AGENTPLANE_APP_PRIVATE_KEY": "pem",
            "AGENTPLANE_API_URL": "http://x/",
        }
    )
    assert s.webhook_secrets == ("new", "old") and s.app_id == 12 and s.api_url == "http://x"
    assert s.can_act and s.problems() == []


def test_missing_credentials_are_reported_not_fatal() -> None:
    problems = load_settings({}).problems()
    assert any("WEBHOOK_SECRET" in p for p in problems)
    assert any("cannot act" in p for p in problems)


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="AGENTPLANE_APP_ID"):
        load_settings({"AGENTPLANE_APP_ID": "twelve"})
    with pytest.raises(ConfigError, match="AGENTPLANE_API_URL"):
        load_settings({"AGENTPLANE_API_URL": "ftp://x"})


def test_key_path_and_file(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("PEM")
    cfg = tmp_path / "bot.yaml"
    cfg.write_text("webhook_secrets: [a]\nreconcile_seconds: 5\n")
    s = load_settings({"AGENTPLANE_APP_PRIVATE_KEY_PATH": str(tmp_path / "k.pem")}, cfg)
    assert s.app_private_key == "PEM" and s.webhook_secrets == ("a",)
    with pytest.raises(ConfigError, match="AGENTPLANE_APP_PRIVATE_KEY_PATH"):
        load_settings({"AGENTPLANE_APP_PRIVATE_KEY_PATH": str(tmp_path / "nope")})
    cfg.write_text("bogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_settings({}, cfg)
