"""What the runner tells a step: GITHUB_* variables and the event that triggered it.

Pure: `from_env` takes a mapping and the event's JSON text, so tests hand both in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.errors import AgentplaneError
from bot.core.identity import from_github
from bot.core.record import DoorRef
from bot.core.request import Door

SCHEDULED = "scheduled"
"""The `job` input that means: every job whose schedule is due."""


class ActionsError(AgentplaneError):
    """The runner's environment is not what a workflow step gives (or a step failed)."""


@dataclass(frozen=True)
class ActionsContext:
    repository: str
    """owner/name (GITHUB_REPOSITORY)."""
    server_url: str
    api_url: str
    run_id: int
    event_name: str
    actor: str
    """Who triggered this workflow run (GITHUB_TRIGGERING_ACTOR, else GITHUB_ACTOR)."""
    sender: Mapping[str, Any]
    """The event's `sender` (a GitHub user object with its numeric id), or {}."""
    summary_path: str | None
    output_path: str | None

    @property
    def run_url(self) -> str:
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], event_text: str | None) -> ActionsContext:
        missing = [k for k in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID") if not env.get(k)]
        if missing:
            raise ActionsError(
                f"{', '.join(missing)} not set: `agentplane actions` runs as a step of a "
                "GitHub Actions workflow (use `agentplane run` or `schedule run` elsewhere)"
            )
        try:
            run_id = int(env["GITHUB_RUN_ID"])
        except ValueError:
            raise ActionsError(f"GITHUB_RUN_ID={env['GITHUB_RUN_ID']!r} is not a number") from None
        event: Any = {}
        if event_text:
            try:
                event = json.loads(event_text)
            except json.JSONDecodeError as exc:
                raise ActionsError(f"GITHUB_EVENT_PATH is not JSON: {exc}") from None
        sender = event.get("sender") if isinstance(event, dict) else None
        return cls(
            repository=env["GITHUB_REPOSITORY"],
            server_url=env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
            api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            run_id=run_id,
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            actor=env.get("GITHUB_TRIGGERING_ACTOR") or env.get("GITHUB_ACTOR", ""),
            sender=sender if isinstance(sender, dict) else {},
            summary_path=env.get("GITHUB_STEP_SUMMARY") or None,
            output_path=env.get("GITHUB_OUTPUT") or None,
        )

    def door_ref(
        self, branch: str | None = None, number: int | None = None, dispatch: str | None = None
    ) -> DoorRef:
        return DoorRef(
            repo=self.repository,
            number=number,
            workflow_run_id=self.run_id,
            workflow_run_url=self.run_url,
            actor=self.actor or None,
            branch=branch,
            dispatch=dispatch,
        )

    def scheduled(self, job: str) -> bool:
        """Runs for the schedule: `job: scheduled`, or any job on an `on: schedule` event."""
        return job == SCHEDULED or self.event_name == "schedule"

    def requester(self) -> tuple[Door, str, str]:
        """(door, requester key, shown name) of a run a person asked for on Actions (a
        workflow_dispatch): the event's sender by numeric id, who then cannot approve it."""
        if not self.sender:
            raise ActionsError(
                f"the {self.event_name or 'triggering'} event names no sender: run a named "
                "job from workflow_dispatch, or `job: scheduled` for the schedule"
            )
        return "actions", from_github(self.sender), str(self.sender.get("login", ""))
