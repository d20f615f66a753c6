"""The double's state: records of repos, pulls, comments, reviews, tokens and
deliveries, and the API constants they share."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pygit2

PREFIX = "/api/v3"  # GitHub Enterprise layout, so a bot that drops its base path is caught
DOCS = "https://docs.github.com/rest"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID."
)
APP_PERMISSIONS = {
    "actions": "write",  # dispatching runs to the agentplane workflow
    "checks": "write",
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
}
APP_EVENTS = [
    "check_run",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "push",
    "workflow_run",
]
ROLE = {"admin": "admin", "write": "write", "read": "read", "none": "read"}


_clock_lock = threading.Lock()
_last = [0.0]


def now() -> str:
    """GitHub's times are to the second. Here every stamp is at least a second after the
    one before, so that events a test makes one after another are ordered as a person's
    would be; a test that wants two events in the same second says so explicitly."""
    with _clock_lock:
        _last[0] = max(float(int(time.time())), _last[0] + 1)
        return datetime.fromtimestamp(_last[0], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # without the API prefix, as in the spec: /repos/octo/demo/pulls/1
    query: dict[str, list[str]]
    json: Any
    headers: dict[str, str]
    operation_id: str | None = None
    status: int = 0
    at: float = 0.0
    """time.monotonic() when the double answered it (for spacing checks)."""


@dataclass(frozen=True)
class RepoPaths:
    full_name: str
    bare: Path
    clone_url: str


class Event(NamedTuple):
    """What a simulated user action returns: the new object's id and its webhook payload."""

    id: int
    payload: dict[str, Any]


@dataclass
class Repo:
    full_name: str
    id: int
    bare: Path
    default_branch: str
    private: bool
    created_at: str
    permissions: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)
    """branch -> the rule types a repository ruleset applies to it (update, deletion, ...)."""

    @property
    def owner(self) -> str:
        return self.full_name.split("/")[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/")[1]

    def git(self) -> pygit2.Repository:
        # Opened per use: pushes from other processes must be visible at once.
        return pygit2.Repository(str(self.bare))

    def tip(self, branch: str) -> str | None:
        ref = self.git().references.get(f"refs/heads/{branch}")
        return str(ref.target) if ref is not None else None


@dataclass
class Pull:
    repo: str
    number: int
    id: int
    head: str
    base: str
    user: str
    title: str
    body: str | None
    draft: bool
    created_at: str
    updated_at: str
    state: str = "open"
    closed_at: str | None = None
    last_head_sha: str = ""
    head_repo: str = ""
    """The fork the head branch lives in; empty for a branch of the PR's own repo."""


@dataclass
class Comment:
    repo: str
    number: int
    id: int
    user: str
    body: str
    created_at: str
    updated_at: str
    reactions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Review:
    repo: str
    number: int
    id: int
    user: str
    state: str  # REST spelling: APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    body: str
    commit_id: str
    submitted_at: str


@dataclass
class Token:
    token: str
    installation_id: int | None  # None: a personal token
    login: str | None
    expires_at: datetime
    repositories: list[str] | None = None
    permissions: dict[str, str] = field(default_factory=dict)


@dataclass
class Delivery:
    id: int
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    status_code: int
    delivered_at: str
    redelivery: bool = False
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    body: dict[str, Any]
    headers: dict[str, str]
