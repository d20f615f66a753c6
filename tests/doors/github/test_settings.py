from pathlib import Path

import pytest

from bot.doors.github.settings import ConfigError, Settings, load_settings


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


def test_every_variable_is_read_and_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "bot.yaml"
    cfg.write_text("reconcile_seconds: 5\nallow_forks: false\nclone_url: file:///a/{repo}\n")
    env = {
        "AGENTPLANE_WEBHOOK_SECRET": "s1,s2",
        "AGENTPLANE_GITHUB_TOKEN": "t",
        "AGENTPLANE_CLONE_URL": "file:///b/{repo}",
        "AGENTPLANE_DATA_DIR": str(tmp_path / "d"),
        "AGENTPLANE_ALLOW_FORKS": "true",
        "AGENTPLANE_GITHUB_THROTTLE": "0",
        "AGENTPLANE_APP_ID": "",  # empty is unset
    }
    s = load_settings(env, cfg)
    assert s.webhook_secrets == ("s1", "s2") and s.github_token == "t" and s.app_id is None
    assert s.clone_url == "file:///b/{repo}" and s.data_dir == tmp_path / "d"
    assert s.allow_forks and not s.github_throttle and s.reconcile_seconds == 5.0
    # Built in code, settings read nothing from the host.
    monkeypatch.setenv("AGENTPLANE_GITHUB_TOKEN", "host")
    assert Settings(webhook_secrets=("s",)).github_token is None
    assert load_settings().github_token == "host"  # the default is this process's environment


def test_an_unreadable_or_shapeless_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read config"):
        load_settings({}, tmp_path / "nope.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping of settings"):
        load_settings({}, listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: cannot read config"):
        load_settings({}, broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("reconcile_seconds: soon\n")
    with pytest.raises(ConfigError, match=r"bad settings in .*typo\.yaml: AGENTPLANE_RECONCILE"):
        load_settings({}, typo)


def test_a_viewer_on_the_apps_origin_is_refused_with_the_variables_named() -> None:
    env = {
        "AGENTPLANE_PUBLIC_URL": "https://a.example",
        "AGENTPLANE_VIEWER_URL": "https://a.example",
    }
    with pytest.raises(ConfigError, match="AGENTPLANE_VIEWER_URL must be another origin"):
        load_settings(env)
    env["AGENTPLANE_VIEWER_URL"] = "https://traces.a.example"
    assert load_settings(env).viewer_url == "https://traces.a.example"
