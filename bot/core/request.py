"""RunRequest: what every front door turns its trigger into."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.core.job import Job

Door = Literal["cli", "pull_request", "issue", "comment", "schedule", "actions", "mcp", "web"]


class RunRequest(BaseModel):
    model_config = ConfigDict(frozen=True)
    job: Job
    job_path: str
    requester: str
    """The identity key (bot.core.identity) of whoever asked for the run (who cannot approve it)."""
    requester_name: str = ""
    """How the door shows that person (a GitHub login); never compared."""
    door: Door = "cli"
    prompt: str | None = None
    """A prompt from the door (PR body, issue, command); wins over the job's own."""
    repo: str
    commit: str
    """The commit the job runs at; the workspace is a copy of it."""
