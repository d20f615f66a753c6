"""The run pages as `agentplane serve` wires them: one Site per repository the bot serves,
over the bot's own clone and audit log; access asked with the App's installation token;
approvals and starts from a job's page handed to the bot's worker through its durable
queue, so they are decided, applied, pushed and shown on the pull request exactly as a
review would be, and a start runs as every delivery does (leased, retried, deduplicated)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from fastapi import FastAPI

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.backends import Lazy
from bot.doors.github.client import GitHubClient
from bot.doors.github.queue import DeliveryQueue
from bot.doors.github.sansio import Delivery
from bot.doors.github.settings import Settings
from bot.doors.github.state import PullState
from bot.doors.github.web_decision import WEB_DECISION
from bot.doors.github.web_start import WEB_START, start_payload
from bot.doors.web.access import Access
from bot.doors.web.hub import Hub, SignIn, attach
from bot.doors.web.index import RunIndex
from bot.doors.web.oauth import Person
from bot.doors.web.site import Decision, NotPermitted, Site, Start, User
from bot.run.engine import Engine

QUEUED = (
    "Your decision is with the bot's queue. It goes through the same gates as a review: "
    "the run's page and its pull request show whether it counted, in a few seconds."
)
STARTED = (
    "Your run is with the bot's queue. The bot runs it as door web, under the same policy "
    "as every other door, and lists it on the runs page as soon as it starts."
)


def decision_payload(full: str, installation: int | None, d: Decision) -> dict[str, object]:
    uid = int(d.person.key.removeprefix("github:"))
    return {
        "repository": {"full_name": full},
        "installation": {"id": installation},
        "run_id": d.run_id,
        "decision": d.decision,
        "approver": {"id": uid, "login": d.person.name},
        "reviewed_commit": d.reviewed_commit,
        "reviewed_digest": d.reviewed_digest,
        "shown_at": d.shown_at.isoformat(),
        "submitted_at": d.submitted_at.isoformat(),
    }


class ServeSites:
    """Sites made on first use, from the clones the bot keeps under data_dir/repos."""

    def __init__(
        self,
        settings: Settings,
        state: PullState,
        enqueue: Callable[[Delivery], bool],
        secrets: list[str],
        access: Access | None = None,
    ) -> None:
        self.settings, self.state, self.enqueue, self.secrets = settings, state, enqueue, secrets
        self.access = access
        """Who may start runs; None: nobody (starts are offered only with it)."""
        self._sites: dict[str, Site] = {}
        self._lock = threading.Lock()

    def repos(self) -> list[str]:
        return [repo for repo, _ in self.state.repos()]

    def installation(self, full: str) -> int | None:
        return dict(self.state.repos()).get(full)

    def site_for(self, full: str) -> Site | None:
        with self._lock:
            if full in self._sites:
                return self._sites[full]
        path = self.settings.data_dir / "repos" / full.replace("/", "__")
        if not (path / ".git").is_dir():
            return None  # no delivery has cloned it yet: it has no runs
        engine = Engine(GitRepo(path), Lazy())
        engine.redactor = engine.redactor.with_secrets(self.secrets)
        site = Site(
            engine,
            RunIndex.for_log(engine.audit),
            User("", "nobody"),
            decider=lambda d: self._queue(full, d),
            jobs_enabled=self.access is not None,
            secret=self.settings.session_secret or "",
            starter=lambda s: self._start(full, s),
            may_start=lambda user: self._why_not(full, user),
            jobs_from_default=True,
        )
        with self._lock:
            return self._sites.setdefault(full, site)

    def _queue(self, full: str, d: Decision) -> str:
        payload = decision_payload(full, self.installation(full), d)
        self.enqueue(Delivery(WEB_DECISION, f"web-{uuid.uuid4()}", "web", payload))
        return QUEUED

    def _why_not(self, full: str, user: User) -> str | None:
        person = Person(int(user.key.removeprefix("github:")), user.name)
        if self.access is not None and self.access.can_write(person, full):
            return None
        return (
            f"{person.login} cannot start runs in {full}: GitHub must give them write "
            "access to the repository (then policy decides, as for every door)"
        )

    def _start(self, full: str, s: Start) -> str:
        person = Person(int(s.person.key.removeprefix("github:")), s.person.name)
        if (why := self._why_not(full, s.person)) is not None:
            raise NotPermitted(why)
        ident = f"web-start-{person.id}-{s.form}"
        payload = start_payload(
            full, self.installation(full), s.job.path, s.prompt, person.id, person.login, ident
        )
        # One delivery per form shown: a form posted twice is deduplicated by the queue.
        self.enqueue(Delivery(WEB_START, ident, "web", payload))
        return STARTED


def attach_pages(
    app: FastAPI,
    settings: Settings,
    state: PullState,
    queue: DeliveryQueue,
    client_for: Callable[[int | None], GitHubClient],
    secrets: list[str],
) -> Hub:
    assert settings.pages_enabled  # the caller checks; sign-in never runs half-configured

    def ask(full: str, login: str) -> tuple[str, int | None]:
        return client_for(sites.installation(full)).collaborator(full, login)

    access = Access(ask, settings.access_cache_seconds)
    sites = ServeSites(settings, state, queue.put, secrets, access)
    hub = Hub(
        SignIn(
            public_url=settings.public_url or "",
            client_id=settings.oauth_client_id or "",
            client_secret=settings.oauth_client_secret or "",
            secret=settings.session_secret or "",
            web_url=settings.web_url,
            api_url=settings.api_url,
        ),
        sites.repos,
        sites.site_for,
        access,
        viewer_url=settings.viewer_url,
    )
    attach(app, hub)
    return hub
