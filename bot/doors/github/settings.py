"""Bot settings: `AGENTPLANE_*` environment variables (or a YAML file), checked at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.core.errors import AgentplaneError


class ConfigError(AgentplaneError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    webhook_secrets: tuple[str, ...] = Field(
        default=(), description="AGENTPLANE_WEBHOOK_SECRET; several, comma-separated, rotate"
    )
    app_id: int | None = None
    app_private_key: str | None = Field(None, repr=False)
    github_token: str | None = Field(None, repr=False, description="personal token fallback")
    api_url: str = "https://api.github.com"
    clone_url: str | None = Field(None, description="template, e.g. file:///srv/{owner}/{repo}.git")
    data_dir: Path = Path(".agentplane-bot")
    reconcile_seconds: float = 600.0
    allow_forks: bool = False
    github_throttle: bool = Field(
        True,
        description="PyGithub's pauses between requests (GitHub's advice against "
        "secondary rate limits); off only for local test doubles",
    )

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

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
        return out


ENV = {
    "AGENTPLANE_WEBHOOK_SECRET": "webhook_secrets",
    "AGENTPLANE_APP_ID": "app_id",
    "AGENTPLANE_APP_PRIVATE_KEY": "app_private_key",
    "AGENTPLANE_GITHUB_TOKEN": "github_token",
    "AGENTPLANE_API_URL": "api_url",
    "AGENTPLANE_CLONE_URL": "clone_url",
    "AGENTPLANE_DATA_DIR": "data_dir",
    "AGENTPLANE_RECONCILE_SECONDS": "reconcile_seconds",
    "AGENTPLANE_ALLOW_FORKS": "allow_forks",
    "AGENTPLANE_GITHUB_THROTTLE": "github_throttle",
}


def load_settings(env: Mapping[str, str] = os.environ, file: Path | None = None) -> Settings:
    raw: dict[str, object] = {}
    source = "environment"
    if file is not None:
        source = str(file)
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{file}: cannot read config: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of settings")
        raw.update(loaded)
    for var, field in ENV.items():
        if env.get(var):
            raw[field] = env[var]
    key_path = env.get("AGENTPLANE_APP_PRIVATE_KEY_PATH")
    if key_path:
        try:
            raw["app_private_key"] = Path(key_path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"AGENTPLANE_APP_PRIVATE_KEY_PATH={key_path}: {exc.strerror}"
            ) from None
    if isinstance(raw.get("webhook_secrets"), str):
        raw["webhook_secrets"] = tuple(
            s.strip() for s in str(raw["webhook_secrets"]).split(",") if s.strip()
        )
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        names = {v: k for k, v in ENV.items()}
        msgs = [f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"bad settings in {source}: " + "; ".join(msgs)) from None
