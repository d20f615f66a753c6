"""The GitHub adapter (PyGithub): App or token auth, retries, and the few calls the door makes.

Installation tokens come from PyGithub's AppInstallationAuth, which refreshes
them before they expire. Retries and pauses follow GitHub's advice (bot.doors.github.ratelimit):
reads are retried by urllib3, writes by GitHubClient.write after it looks, every wait is
capped, and each installation's writes go one at a time, spaced. Comments carry a hidden
marker so posting is idempotent.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import quote

import github
import requests
from cryptography.hazmat.primitives import serialization
from github import Auth, Github, GithubIntegration

from bot.core.errors import AgentplaneError
from bot.core.identity import from_github
from bot.doors.github.ratelimit import (
    Clock,
    GuidedRetry,
    Pacer,
    Sleep,
    capped,
    pacer_for,
    rate_limited,
    retry_wait,
)
from bot.doors.github.settings import Settings

T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""Methods urllib3 may send again by itself. A POST or PATCH whose answer was lost may
have been applied: only the bot, which checks first, sends one again (GitHubClient.write)."""
WRITE_ATTEMPTS = 6


class GitHubError(AgentplaneError):
    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.headers = headers or {}


def _retry_after(headers: Any) -> float | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return min(float(value), 900.0) if value is not None else None
    except ValueError:
        return None


def transient(exc: Exception) -> bool:
    """A failure a later attempt may not meet: GitHub's 5xx, its rate limits (429, or a
    403 that says so), a timeout or a dropped connection."""
    if isinstance(exc, requests.RequestException):
        return True
    if isinstance(exc, GitHubError) and exc.status is not None:
        return exc.status >= 500 or rate_limited(exc.status, exc.headers, str(exc))
    return False


def unauthorized(exc: Exception) -> bool:
    """GitHub refused the token (revoked, or expired before its stated expiry)."""
    if isinstance(exc, GitHubError):
        return exc.status == 401
    return isinstance(exc, github.GithubException) and exc.status == 401


@dataclass(frozen=True)
class PullInfo:
    repo: str
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    author: str
    """The author's login, for display only: people are compared by id (author_key)."""
    is_fork: bool
    state: str
    title: str
    body: str
    files: tuple[tuple[str, str], ...]
    """(path, status) for every file the PR touches."""
    author_id: int = 0
    """The author's numeric GitHub id (0: GitHub gave none, and author_key fails closed)."""

    @property
    def author_key(self) -> str:
        """The author's identity key (bot.core.identity): what the requester is compared by."""
        return from_github({"login": self.author, "id": self.author_id})


@dataclass(frozen=True)
class Posted:
    id: int
    at: datetime | None
    """GitHub's time for the comment's current text (updated_at, else created_at)."""


def _written(comment: Any) -> datetime | None:
    at = comment.updated_at or comment.created_at
    if not isinstance(at, datetime):
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # GitHub's times are UTC


@functools.lru_cache(maxsize=4)
def _app_key(pem: str) -> Any:
    """The App's key, parsed once per process: checking an RSA key costs far more than
    signing with it, and PyGithub would parse the PEM again for every JWT it signs."""
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise GitHubError(
            f"the App's private key is not a PEM private key without a passphrase: {exc}"
        ) from None


def marker(key: str) -> str:
    return f"<!-- agentplane:{key} -->"


class GitHubClient:
    def __init__(
        self,
        settings: Settings,
        installation_id: int | None = None,
        *,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self._sleep, self._clock = sleep, clock
        # Never resend a write blindly: urllib3 resends only what cannot act twice
        # (IDEMPOTENT), waiting as GitHub advises (GuidedRetry); write() resends the rest.
        retry = GuidedRetry(
            max_wait=settings.github_max_wait,
            sleep=sleep,
            clock=clock,
            total=5,
            backoff_factor=settings.github_backoff,
            allowed_methods=IDEMPOTENT,
            status_forcelist=[*range(500, 600), 429],
        )
        # Lazy objects: only the calls we make go over the wire (no hidden GETs to build them).
        opts: dict[str, Any] = {
            "base_url": settings.api_url,
            "retry": retry,
            "lazy": True,
            "timeout": settings.github_timeout,
        }
        # Writes are spaced per installation by the Pacer, across this process's clients;
        # PyGithub's own spacing is per client, so only its pause between reads is kept.
        opts["seconds_between_writes"] = None
        if not settings.github_throttle:
            opts["seconds_between_requests"] = None
        self.pacer: Pacer = pacer_for(
            settings.api_url,
            installation_id,
            settings.github_write_pause if settings.github_throttle else 0.0,
        )
        auth: Auth.Auth
        self.gh: Github | None = None
        self._user_ids: dict[str, int] = {}
        """login (case-folded) -> id, for every login resolved through this client."""
        self._user_ids_lock = threading.Lock()
        self.integration: GithubIntegration | None = None
        if settings.app_id and settings.app_private_key:
            key = _app_key(settings.app_private_key)
            # PyJWT signs with a key object as well as with PEM text.
            app = Auth.AppAuth(settings.app_id, cast(Any, lambda: key))
            self.integration = GithubIntegration(
                auth=app, base_url=settings.api_url, retry=retry, timeout=settings.github_timeout
            )
            if installation_id is None:
                return
            auth = app.get_installation_auth(installation_id)
        elif settings.github_token:
            auth = Auth.Token(settings.github_token)
        else:
            raise GitHubError("no App credentials or token: the bot cannot act on GitHub")
        self.gh = Github(auth=auth, **opts)
        self._auth = auth

    def _api(self) -> Github:
        if self.gh is None:
            raise GitHubError("this client is app-level; use one for an installation")
        return self.gh

    def token(self) -> str:
        """A token git can use to clone and push (installation token or personal token)."""
        token = getattr(self._auth, "token", None)
        if not isinstance(token, str):
            raise GitHubError("cannot obtain a git token from the configured auth")
        return token

    def call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except github.GithubException as exc:
            headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
            raise GitHubError(
                f"GitHub API {exc.status}: {exc.data}",
                exc.status,
                _retry_after(exc.headers),
                headers,
            ) from None

    def mutate(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """call() for a request that changes something: one at a time per installation,
        spaced as GitHub advises (Pacer)."""
        with self.pacer.hold():
            return self.call(fn, *args, **kw)

    def write(self, what: str, attempt: Callable[[], T]) -> T:
        """attempt() until it succeeds or fails for good. attempt must look before it writes
        (find the comment by its marker, the check run by name and commit), so running it
        again after a write whose answer was lost finds that write instead of repeating it.
        Waits as GitHub advises (ratelimit.retry_wait), never longer than github_max_wait."""
        for n in range(WRITE_ATTEMPTS):
            try:
                return attempt()
            except (GitHubError, requests.RequestException) as exc:
                if not transient(exc) or n == WRITE_ATTEMPTS - 1:
                    if isinstance(exc, GitHubError):
                        raise
                    raise GitHubError(f"{what}: {type(exc).__name__}: {exc}") from None
                failed = exc if isinstance(exc, GitHubError) else None
                wait, why = retry_wait(
                    failed.status if failed else None,
                    failed.headers if failed else None,
                    str(exc),
                    n,
                    backoff=self.settings.github_backoff,
                    now=self._clock(),
                )
                self._sleep(capped(wait, f"{what}: {why}", self.settings.github_max_wait))
        raise AssertionError("unreachable")

    def repo(self, full_name: str) -> Any:
        return self.call(self._api().get_repo, full_name)

    def pull(self, full_name: str, number: int) -> PullInfo:
        repo = self.repo(full_name)
        pr = self.call(repo.get_pull, number)
        files = tuple((f.filename, f.status) for f in self.call(pr.get_files))
        head_repo = pr.head.repo.full_name if pr.head.repo else ""
        return PullInfo(
            repo=full_name,
            number=number,
            head_sha=pr.head.sha,
            head_ref=pr.head.ref,
            base_ref=pr.base.ref,
            author=pr.user.login,
            author_id=pr.user.id,
            is_fork=head_repo != full_name,
            state=pr.state,
            title=pr.title or "",
            body=pr.body or "",
            files=files,
        )

    def user_id(self, login: str) -> int | None:
        """The numeric id of the account that holds login now (None: no such account).

        A found id is cached for this client's life, so a login policy names keeps meaning
        the account it meant when first resolved here; a miss is asked again next time
        (the account may be created later)."""
        name = login.casefold()
        with self._user_ids_lock:
            if name in self._user_ids:
                return self._user_ids[name]
        try:
            _, data = self._api().requester.requestJsonAndCheck(
                "GET", f"/users/{quote(login, safe='')}"
            )
        except github.GithubException as exc:
            if exc.status == 404:
                return None
            raise GitHubError(f"GitHub API {exc.status}: {exc.data}", exc.status) from None
        uid = data.get("id") if isinstance(data, dict) else None
        if type(uid) is not int or uid <= 0:
            return None
        with self._user_ids_lock:
            return self._user_ids.setdefault(name, uid)

    def open_pulls(self, full_name: str) -> list[int]:
        return [p.number for p in self.call(self.repo(full_name).get_pulls, state="open")]

    def permission(self, full_name: str, login: str) -> str:
        return str(self.call(self.repo(full_name).get_collaborator_permission, login))

    def collaborator(self, full_name: str, login: str) -> tuple[str, int | None]:
        """(permission, the account's id) GitHub gives login on the repository: the id
        lets the caller check the login still names the person it means (renames)."""
        _, data = self.call(
            self._api().requester.requestJsonAndCheck,
            "GET",
            f"/repos/{full_name}/collaborators/{quote(login, safe='')}/permission",
        )
        user = data.get("user") if isinstance(data, dict) else None
        uid = user.get("id") if isinstance(user, dict) else None
        permission = data.get("permission") if isinstance(data, dict) else None
        return str(permission or "none"), uid if type(uid) is int else None

    def check(
        self,
        full_name: str,
        name: str,
        head_sha: str,
        *,
        status: str = "completed",
        conclusion: str | None = None,
        title: str = "",
        summary: str = "",
        annotations: list[dict[str, Any]] | None = None,
    ) -> int:
        """Create or update the check run `name` on head_sha (idempotent by name + sha)."""
        return self.write(
            f"check run {name}",
            lambda: self._check(
                full_name, name, head_sha, status, conclusion, title, summary, annotations
            ),
        )

    def _check(
        self,
        full_name: str,
        name: str,
        head_sha: str,
        status: str,
        conclusion: str | None,
        title: str,
        summary: str,
        annotations: list[dict[str, Any]] | None,
    ) -> int:
        repo = self.repo(full_name)
        output: dict[str, Any] = {"title": title or name, "summary": summary[:65000]}
        if annotations:
            output["annotations"] = annotations[:50]
        kw: dict[str, Any] = {"status": status, "output": output}
        if conclusion is not None:
            kw["conclusion"] = conclusion
        commit = self.call(repo.get_commit, head_sha)
        existing = [c for c in self.call(commit.get_check_runs, check_name=name)]
        if existing:
            self.mutate(existing[0].edit, **kw)
            return int(existing[0].id)
        return int(self.mutate(repo.create_check_run, name=name, head_sha=head_sha, **kw).id)

    def upsert_comment(self, full_name: str, number: int, key: str, body: str) -> Posted:
        """Post or edit the one comment carrying key's marker: redelivery never duplicates.

        Returns GitHub's own time for the comment as it now reads: when it was last written
        (an unchanged body keeps the time it was written with)."""
        return self.write(
            f"comment {key} on #{number}", lambda: self._upsert(full_name, number, key, body)
        )

    def _upsert(self, full_name: str, number: int, key: str, body: str) -> Posted:
        issue = self.call(self.repo(full_name).get_issue, number)
        tagged = f"{marker(key)}\n{body}"
        for comment in self.call(issue.get_comments):
            if marker(key) in (comment.body or ""):
                if comment.body != tagged:
                    self.mutate(comment.edit, tagged)
                return Posted(int(comment.id), _written(comment))
        created = self.mutate(issue.create_comment, tagged)
        return Posted(int(created.id), _written(created))

    def react(self, full_name: str, comment_id: int, content: str) -> None:
        # PyGithub reaches this endpoint only through a fetched comment; one request suffices.
        # GitHub answers a repeated reaction with the one already there: safe to resend.
        self.write(
            "reaction",
            lambda: self.mutate(
                self._api().requester.requestJsonAndCheck,
                "POST",
                f"/repos/{full_name}/issues/comments/{comment_id}/reactions",
                input={"content": content},
            ),
        )

    def branch_rules(self, full_name: str, branch: str) -> list[dict[str, Any]]:
        """The rules GitHub applies to branch (rulesets; needs only Metadata read)."""
        _, data = self.call(
            self._api().requester.requestJsonAndCheck,
            "GET",
            f"/repos/{full_name}/rules/branches/{quote(branch, safe='')}",
            parameters={"per_page": 100},
        )
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    def installation_for(self, full_name: str) -> int:
        """The App's installation on a repository (App credentials only)."""
        if self.integration is None:
            raise GitHubError("no App credentials: set AGENTPLANE_APP_ID and its private key")
        owner, _, name = full_name.partition("/")
        return int(self.call(self.integration.get_repo_installation, owner, name).id)

    def create_pull(self, full_name: str, head: str, base: str, title: str, body: str) -> int:
        pr = self.mutate(
            self.repo(full_name).create_pull, title=title, body=body, head=head, base=base
        )
        return int(pr.number)

    def dispatch_workflow(
        self, full_name: str, workflow: str, ref: str, inputs: dict[str, str]
    ) -> None:
        """workflow_dispatch of .github/workflows/<workflow> on ref, with inputs."""
        flow = self.call(self.repo(full_name).get_workflow, workflow)
        if not self.mutate(flow.create_dispatch, ref, inputs):
            raise GitHubError(f"GitHub refused to dispatch {workflow} on {ref}", 422)

        # -- App-level: deliveries for the reconciler -------------------------------------------

    def failed_deliveries(self) -> list[dict[str, Any]]:
        if self.integration is None:
            return []
        _, data = self.integration.requester.requestJsonAndCheck(
            "GET", "/app/hook/deliveries", parameters={"per_page": 100}
        )
        return [d for d in data if d.get("status_code", 200) >= 400 and not d.get("redelivery")]

    def redeliver(self, delivery_id: int) -> None:
        if self.integration is not None:
            self.integration.requester.requestJsonAndCheck(
                "POST", f"/app/hook/deliveries/{delivery_id}/attempts"
            )

    def installations(self) -> list[int]:
        if self.integration is None:
            return []
        return [i.id for i in self.integration.get_installations()]
