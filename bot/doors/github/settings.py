"""Bot settings: `AGENTPLANE_*` environment variables (or a YAML file), checked at start-up.

pydantic-settings reads both (`load_settings`); a `Settings(...)` built in code reads
neither, so tests and benches never pick up the host's variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from bot.core.errors import AgentplaneError


class ConfigError(AgentplaneError):
    pass


PREFIX = "AGENTPLANE_"
SECRET_VAR = "AGENTPLANE_WEBHOOK_SECRET"
"""Singular, as documented, though it holds several: the field is `webhook_secrets`."""
KEY_PATH_VAR = "AGENTPLANE_APP_PRIVATE_KEY_PATH"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix=PREFIX, env_ignore_empty=True
    )
    webhook_secrets: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="AGENTPLANE_WEBHOOK_SECRET; several, comma-separated, rotate"
    )
    app_id: int | None = None
    app_private_key: str | None = Field(None, repr=False)
    github_token: str | None = Field(None, repr=False, description="personal token fallback")
    api_url: str = "https://api.github.com"
    clone_url: str | None = Field(None, description="template, e.g. file:///srv/{owner}/{repo}.git")
    data_dir: Path = Path(".agentplane-bot")
    reconcile_seconds: float = 600.0
    schedule_seconds: float = Field(
        0.0,
        ge=0,
        description="0: jobs' schedules are left to the Action; otherwise serve runs the one "
        "scheduler every this many seconds for each repository it serves",
    )
    allow_forks: bool = False
    public_url: str | None = Field(
        None,
        description="where people reach this server (https://host[:port]); the PR comment "
        "links to each run's page under it, and GitHub sends signed-in people back to it",
    )
    viewer_url: str | None = Field(
        None,
        description="where people reach the trace viewer: another origin that reaches this "
        "same server (a sibling host name, e.g. https://traces.example.com), never "
        "public_url's origin; unset: run pages show no trace viewer",
    )
    oauth_client_id: str | None = Field(None, description="the App's client ID, for sign-in")
    oauth_client_secret: str | None = Field(None, repr=False)
    session_secret: str | None = Field(
        None, repr=False, description="signs the run pages' cookies; 32 characters or more"
    )
    web_url: str = Field(
        "https://github.com", description="GitHub's web origin, for /login/oauth/..."
    )
    access_cache_seconds: float = Field(
        60.0, description="how long GitHub's answer to 'can this person read it' is kept"
    )
    github_backoff: float = Field(
        1.0,
        gt=0,
        le=60,
        description="first wait, in seconds, before a failed GitHub call is tried again"
        " (doubling each time) when GitHub gives no Retry-After",
    )
    github_timeout: int = Field(
        15,
        ge=1,
        description="seconds to wait for one GitHub API answer before it counts as failed",
    )
    github_throttle: bool = Field(
        True,
        description="pauses between requests (GitHub's advice against secondary rate "
        "limits): github_write_pause between writes per installation, PyGithub's between "
        "reads; off only for local test doubles",
    )
    github_write_pause: float = Field(
        1.0,
        ge=0,
        le=60,
        description="seconds between one installation's mutating GitHub calls (GitHub: "
        "at least one second), which also go one at a time",
    )
    github_max_wait: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="the longest the bot waits before retrying a GitHub call (Retry-After, "
        "a rate limit's reset, a backoff); a longer one fails the call, and the delivery "
        "is retried from the queue",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: load_settings reads the environment and the file.
        return (init_settings,)

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _secrets(cls, v: object) -> object:
        # Rotation: the variable lists the current secret and the ones still accepted.
        if isinstance(v, str):
            return tuple(part.strip() for part in v.split(",") if part.strip())
        return v

    @field_validator("api_url", "web_url", "public_url", "viewer_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, v: str | None) -> str | None:
        if v is not None and len(v) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return v

    @model_validator(mode="after")
    def _viewer_elsewhere(self) -> Settings:
        # The viewer runs script over recorded pages: on the app's origin it could act as
        # whoever is signed in.
        same = self.viewer_url and self.public_url
        if same and _origin(self.viewer_url or "") == _origin(self.public_url or ""):
            raise ValueError(
                "AGENTPLANE_VIEWER_URL must be another origin than AGENTPLANE_PUBLIC_URL "
                "(e.g. https://traces.example.com beside https://agentplane.example.com)"
            )
        return self

    @property
    def pages_enabled(self) -> bool:
        """Run pages are served only with everything sign-in needs: never without it."""
        return bool(
            self.public_url
            and self.oauth_client_id
            and self.oauth_client_secret
            and self.session_secret
        )

    @property
    def can_act(self) -> bool:
        return bool((self.app_id and self.app_private_key) or self.github_token)

    def problems(self) -> list[str]:
        """What stops the bot acting; empty when it can."""
        out = []
        if not self.webhook_secrets:
            out.append("AGENTPLANE_WEBHOOK_SECRET is not set: every delivery will be refused")
        if self.app_id and not self.app_private_key:
            out.append("AGENTPLANE_APP_ID is set but AGENTPLANE_APP_PRIVATE_KEY(_PATH) is not")
        if not self.can_act:
            out.append(
                "no App credentials or AGENTPLANE_GITHUB_TOKEN: deliveries are "
                "acknowledged and queued, but the bot cannot act on them"
            )
        sign_in = {
            "AGENTPLANE_PUBLIC_URL": self.public_url,
            "AGENTPLANE_OAUTH_CLIENT_ID": self.oauth_client_id,
            "AGENTPLANE_OAUTH_CLIENT_SECRET": self.oauth_client_secret,
            "AGENTPLANE_SESSION_SECRET": self.session_secret,
        }
        missing = [k for k, v in sign_in.items() if not v]
        if self.oauth_client_id and missing:
            out.append(f"run pages are off: sign-in needs {', '.join(missing)} as well")
        return out


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").casefold(), parts.port


def run_page_url(public_url: str, repo: str, run_id: str) -> str:
    """Where serve shows one run (bot.doors.web.hub serves /repos/{owner}/{name}/...)."""
    return f"{public_url}/repos/{quote(repo)}/runs/{quote(run_id, safe='')}"


ENV = {
    SECRET_VAR if name == "webhook_secrets" else PREFIX + name.upper(): name
    for name in Settings.model_fields
}
"""Each variable and the setting it sets (the error messages name the variable)."""


class _Environment(EnvSettingsSource):
    """The AGENTPLANE_* variables of the mapping given (os.environ unless a test passes
    its own), with the secret's singular name read as the field's."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._given = {
            (PREFIX + "WEBHOOK_SECRETS" if k == SECRET_VAR else k).lower(): v
            for k, v in env.items()
            if k in ENV
        }
        super().__init__(Settings, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._given.items() if v}  # empty means unset, as before


def _from_file(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise ConfigError(f"{file}: cannot read config: no such file")
    try:
        return YamlConfigSettingsSource(Settings, yaml_file=file)()
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{file}: cannot read config: {exc}") from None
    except (TypeError, ValueError):  # a list or a scalar: the source cannot merge it
        raise ConfigError(f"{file}: expected a mapping of settings") from None


def load_settings(env: Mapping[str, str] = os.environ, file: Path | None = None) -> Settings:
    """The file's settings, then the environment's over them, then the key file's."""
    raw: dict[str, Any] = {}
    source = "environment"
    if file is not None:
        source = str(file)
        raw.update(_from_file(file))
    raw.update(_Environment(env)())
    key_path = env.get(KEY_PATH_VAR)
    if key_path:
        try:
            raw["app_private_key"] = Path(key_path).read_text()
        except OSError as exc:
            raise ConfigError(f"{KEY_PATH_VAR}={key_path}: {exc.strerror}") from None
    try:
        return Settings(**raw)
    except ValidationError as exc:
        names = {v: k for k, v in ENV.items()}
        msgs = [
            f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        ]
        raise ConfigError(f"bad settings in {source}: " + "; ".join(msgs)) from None
