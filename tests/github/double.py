"""A GitHub test double: a real HTTP server on loopback, held to GitHub's OpenAPI description.

Every request is routed by the spec's own path templates and validated against
the operation's parameters and request body; every response the double builds
is validated against the operation's response schema. Anything off-spec
answers 500 and lands in `violations`, which the fixture asserts is empty, so
neither the bot nor the double can drift from the real API unnoticed.

Repositories are real bare git repositories: the bot clones and pushes to
them, and a pull request's head sha is whatever its branch tip is right now.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jsonschema
import jwt
import pygit2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.shared import GITHUB

from . import openapi

PREFIX = "/api/v3"  # GitHub Enterprise layout, so a bot that drops its base path is caught
DOCS = "https://docs.github.com/rest"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID."
)
APP_PERMISSIONS = {
    "checks": "write",
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
}
APP_EVENTS = ["check_run", "issue_comment", "pull_request", "pull_request_review", "push"]
ROLE = {"admin": "admin", "write": "write", "read": "read", "none": "read"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class GitHubDouble:
    """`with GitHubDouble(tmp_path) as gh:` serves GitHub's REST API at `gh.api_url`."""

    def __init__(self, root: Path, *, app_id: int = 4242, app_slug: str = "agentplane") -> None:
        self.root = Path(root)
        self.spec = openapi.load()
        self.app_id, self.app_slug = app_id, app_slug
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.app_private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.redelivered: list[int] = []
        self.repos: dict[str, Repo] = {}
        self.installations: dict[str, int] = {}  # account login -> installation id
        self.pulls: dict[tuple[str, int], Pull] = {}
        self.issues: dict[tuple[str, int], dict[str, Any]] = {}
        """Plain issues (not PRs): title, body, user, labels."""
        self._comments: dict[int, Comment] = {}
        self._reviews: list[Review] = []
        self._check_runs: dict[int, dict[str, Any]] = {}
        self.deliveries: list[Delivery] = []
        self.tokens: dict[str, Token] = {}
        self._faults: list[Fault] = []
        self._ids = itertools.count(1001)
        self._user_ids: dict[str, int] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.api_url = ""
        self.payloads = PayloadBuilder(self)

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> GitHubDouble:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"double": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.api_url = f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- arranging state -----------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def user_id(self, login: str) -> int:
        return self._user_ids.setdefault(login, 5000 + len(self._user_ids))

    def create_repo(
        self,
        full_name: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        default_branch: str = "main",
        private: bool = False,
        install: bool = True,
    ) -> RepoPaths:
        """A bare repo with one commit of `files` on `default_branch`; installs the App."""
        bare = self.root / "github" / f"{full_name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        pygit2.init_repository(str(bare), bare=True, initial_head=default_branch)
        repo = Repo(full_name, self.next_id(), bare, default_branch, private, now())
        owner = repo.owner
        repo.permissions[owner] = "admin"
        with self._lock:
            self.repos[full_name] = repo
            if install and owner not in self.installations:
                self.installations[owner] = self.next_id()
        self.commit(full_name, default_branch, dict(files or {"README.md": f"# {repo.name}\n"}))
        return RepoPaths(full_name, bare, self.clone_url(full_name))

    def clone_url(self, full_name: str) -> str:
        return self.repo(full_name).bare.as_uri()

    def repo(self, full_name: str) -> Repo:
        try:
            return self.repos[full_name]
        except KeyError:
            raise KeyError(f"no repository {full_name} in the double") from None

    def commit(
        self,
        full_name: str,
        branch: str,
        files: Mapping[str, str | bytes | None],
        *,
        message: str = "change",
        author: str = "dana",
        start: str | None = None,
    ) -> str:
        """Push one commit onto `branch` (made from `start` or the default); None deletes."""
        repo = self.repo(full_name)
        git = repo.git()
        ref = git.references.get(f"refs/heads/{branch}")
        parent = ref.target if ref is not None else None
        if parent is None:
            base = repo.tip(start or repo.default_branch)
            parent = pygit2.Oid(hex=base) if base else None
        index = pygit2.Index()
        if parent is not None:
            index.read_tree(git[parent].peel(pygit2.Commit).tree)
        for path, content in files.items():
            if content is None:
                index.remove(path)
                continue
            data = content.encode() if isinstance(content, str) else content
            index.add(pygit2.IndexEntry(path, git.create_blob(data), pygit2.enums.FileMode.BLOB))
        tree = index.write_tree(git)
        who = pygit2.Signature(author, f"{author}@users.noreply.github.com")
        oid = git.create_commit(
            f"refs/heads/{branch}", who, who, message, tree, [parent] if parent else []
        )
        return str(oid)

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        if permission not in ROLE:
            raise ValueError(f"permission must be one of {sorted(ROLE)}")
        self.repo(full_name).permissions[login] = permission

    def add_personal_token(self, login: str) -> str:
        token = "ghp_" + secrets.token_hex(18)
        far = datetime.now(UTC) + timedelta(days=365)
        self.tokens[token] = Token(token, None, login, far)
        return token

    def expire_tokens(self) -> None:
        """Make every installation token expired, to test that the bot mints a new one."""
        for token in self.tokens.values():
            if token.installation_id is not None:
                token.expires_at = datetime.now(UTC) - timedelta(seconds=1)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 502,
        times: int = 1,
        retry_after: int | None = None,
        secondary_rate_limit: bool = False,
    ) -> None:
        """The next `times` matching requests fail (after spec validation, before auth)."""
        headers: dict[str, str] = {}
        message = "Server Error" if status >= 500 else "Forbidden"
        if secondary_rate_limit:
            status, message = 403, SECONDARY_RATE_LIMIT
            headers["Retry-After"] = str(retry_after if retry_after is not None else 1)
        elif retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        body = {"message": message, "documentation_url": DOCS, "status": str(status)}
        self._faults.append(
            Fault(method.upper(), re.compile(path_regex), status, times, body, headers)
        )

    def open_pull(
        self,
        full_name: str,
        head: str,
        base: str | None = None,
        *,
        author: str = "dana",
        title: str = "A change",
        body: str | None = "",
        draft: bool = False,
        head_repo: str = "",
    ) -> Event:
        """A PR from `head` (an existing branch, of head_repo if it comes from a fork);
        returns (number, opened payload)."""
        pull = self._new_pull(full_name, head, base, author, title, body, draft, head_repo)
        return Event(pull.number, self.payloads.pull_request(full_name, pull.number, "opened"))

    def _new_pull(
        self,
        full_name: str,
        head: str,
        base: str | None,
        author: str,
        title: str,
        body: str | None,
        draft: bool,
        head_repo: str = "",
    ) -> Pull:
        repo = self.repo(full_name)
        base = base or repo.default_branch
        for branch, where in ((head, head_repo or full_name), (base, full_name)):
            if self.repo(where).tip(branch) is None:
                raise HTTPError(422, f"branch {branch!r} does not exist in {where}")
        with self._lock:
            number = 1 + max([n for (r, n) in [*self.pulls, *self.issues] if r == full_name] or [0])
            number = max(number, 1 + max([c.number for c in self._comments.values()] or [0]))
            stamp = now()
            pull = Pull(
                full_name,
                number,
                self.next_id(),
                head,
                base,
                author,
                title,
                body,
                draft,
                stamp,
                stamp,
                head_repo=head_repo,
            )
            self.pulls[(full_name, number)] = pull
        pull.last_head_sha = self.head_sha(full_name, number)
        return pull

    def head_sha(self, full_name: str, number: int) -> str:
        """The head branch's tip, mirrored as GitHub does into the base repo's
        refs/pull/N/head (with a fork's objects, so the base repo can serve them)."""
        pull = self.pulls[(full_name, number)]
        tip = self.repo(pull.head_repo or full_name).tip(pull.head)
        if tip:
            pull.last_head_sha = tip
            git, ref = self.repo(full_name).git(), f"refs/pull/{number}/head"
            mirrored = git.references.get(ref)
            if mirrored is None or str(mirrored.target) != tip:
                if pull.head_repo:
                    fork = git.remotes.create_anonymous(str(self.repo(pull.head_repo).bare))
                    fork.fetch([f"+refs/heads/{pull.head}:{ref}"])
                else:
                    git.references.create(ref, pygit2.Oid(hex=tip), force=True)
        return pull.last_head_sha

    def fork(self, full_name: str, owner: str) -> str:
        """owner's fork of full_name (the App is not installed on it); returns its name."""
        base = self.repo(full_name)
        name = f"{owner}/{base.name}"
        bare = self.root / "github" / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        pygit2.clone_repository(str(base.bare), str(bare), bare=True)
        repo = Repo(name, self.next_id(), bare, base.default_branch, base.private, now())
        repo.permissions[owner] = "admin"
        with self._lock:
            self.repos[name] = repo
        return name

    def close_pull(self, full_name: str, number: int) -> dict[str, Any]:
        pull = self.pulls[(full_name, number)]
        pull.state, pull.closed_at = "closed", now()
        return self.payloads.pull_request(full_name, number, "closed")

    def submit_review(
        self,
        full_name: str,
        number: int,
        reviewer: str,
        state: str = "approved",
        *,
        body: str = "",
        commit_id: str | None = None,
    ) -> Event:
        """A review by `reviewer` (default on the current head); returns (id, submitted payload)."""
        review = Review(
            full_name,
            number,
            self.next_id(),
            reviewer,
            state.upper(),
            body,
            commit_id or self.head_sha(full_name, number),
            now(),
        )
        self._reviews.append(review)
        return Event(review.id, self.payloads.review(review))

    def open_issue(
        self,
        full_name: str,
        *,
        author: str = "dana",
        title: str = "An issue",
        body: str = "",
        labels: tuple[str, ...] = (),
    ) -> Event:
        """A plain issue (not a PR); returns (number, `issues` labeled-or-opened payload)."""
        with self._lock:
            taken = [n for (r, n) in [*self.pulls, *self.issues] if r == full_name]
            number = 1 + max(taken or [0])
            self.issues[(full_name, number)] = {
                "title": title,
                "body": body,
                "user": author,
                "labels": list(labels),
            }
        return Event(
            number, self.payloads.issue(full_name, number, "labeled" if labels else "opened")
        )

    def add_comment(self, full_name: str, number: int, user: str, body: str) -> Event:
        """`user` comments on issue/PR `number`; returns (id, issue_comment created payload)."""
        stamp = now()
        comment = Comment(full_name, number, self.next_id(), user, body, stamp, stamp)
        self._comments[comment.id] = comment
        return Event(comment.id, self.payloads.issue_comment(comment, "created"))

    def edit_comment(
        self, comment_id: int, body: str, *, editor: str | None = None
    ) -> dict[str, Any]:
        comment = self._comments[comment_id]
        old, comment.body, comment.updated_at = comment.body, body, now()
        return self.payloads.issue_comment(comment, "edited", previous=old, sender=editor)

    def record_delivery(
        self,
        event: str,
        payload: Mapping[str, Any],
        *,
        status_code: int = 200,
        guid: str | None = None,
    ) -> Delivery:
        """Log a delivery as GitHub would have sent it to the App (status_code>=400: it failed)."""
        delivery = Delivery(
            id=self.next_id() * 1000,
            guid=guid or f"{secrets.token_hex(4)}-0000-11ee-8000-{secrets.token_hex(6)}",
            event=event,
            action=payload.get("action"),
            installation_id=(payload.get("installation") or {}).get("id"),
            repository_id=(payload.get("repository") or {}).get("id"),
            status_code=status_code,
            delivered_at=now(),
            payload=dict(payload),
        )
        self.deliveries.append(delivery)
        return delivery

    def signed(
        self, event: str, payload: Mapping[str, Any], secret: str, *, delivery: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and raw body exactly as GitHub would POST this payload to a webhook URL."""
        body = json.dumps(payload).encode()
        guid = delivery or f"{secrets.token_hex(4)}-0000-11ee-8000-{secrets.token_hex(6)}"
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(self.app_id),
            "X-Hub-Signature-256": sign(secret, body),
            "Content-Type": "application/json",
        }
        return headers, body

    # -- inspection ----------------------------------------------------------

    def comments(self, full_name: str, number: int) -> list[Comment]:
        return [c for c in self._comments.values() if (c.repo, c.number) == (full_name, number)]

    def comment(self, comment_id: int) -> Comment:
        return self._comments[comment_id]

    def check_runs(self, full_name: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._check_runs.values() if r["repo"] == full_name]

    def reactions(self, full_name: str, comment_id: int) -> list[str]:
        comment = self._comments[comment_id]
        assert comment.repo == full_name, f"comment {comment_id} is in {comment.repo}"
        return [r["content"] for r in comment.reactions]

    def reviews(self, full_name: str, number: int) -> list[Review]:
        return [r for r in self._reviews if (r.repo, r.number) == (full_name, number)]

    def calls(self, method: str, path_regex: str) -> list[Recorded]:
        return [
            r for r in self.requests if r.method == method.upper() and re.search(path_regex, r.path)
        ]

    # -- serving -------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], raw_body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(raw_path)
        query = parse_qs(url.query, keep_blank_values=True)
        if not url.path.startswith(PREFIX + "/") and url.path != PREFIX:
            self._violate(f"{method} {url.path}: outside the API base {PREFIX}")
            return 404, _error("Not Found"), {}
        path = url.path[len(PREFIX) :] or "/"
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                self._violate(f"{method} {path}: request body is not JSON")
                return 400, _error("Problems parsing JSON"), {}
        match = self.spec.match(method, path)
        record = Recorded(
            method,
            path,
            query,
            body,
            dict(headers),
            match.operation.operation_id if match else None,
        )
        if match is None:
            self._record(record, 404)
            self._violate(f"{method} {path}: no such operation in GitHub's OpenAPI description")
            return 404, _error("Not Found"), {}
        problems = self.spec.validate_request(match, query, body, bool(raw_body))
        if problems:
            self._record(record, 500)
            return self._fail(match, method, path, "request", problems)
        status, out, extra = self._dispatch(match, method, path, query, body, headers)
        problems = self.spec.validate_response(match, status, out)
        self._record(record, status)
        if problems:
            return self._fail(match, method, path, f"{status} response", problems)
        return status, out, extra

    def _record(self, record: Recorded, status: int) -> None:
        with self._lock:
            self.requests.append(
                Recorded(
                    record.method,
                    record.path,
                    record.query,
                    record.json,
                    record.headers,
                    record.operation_id,
                    status,
                )
            )

    def _fail(
        self, match: openapi.Match, method: str, path: str, what: str, problems: list[str]
    ) -> tuple[int, Any, dict[str, str]]:
        op = match.operation.operation_id
        message = f"{method} {path} ({op}): {what} is off-spec: " + "; ".join(problems)
        self._violate(message)
        return 500, _error("test double: " + message), {}

    def _violate(self, message: str) -> None:
        with self._lock:
            if message not in self.violations:  # PyGithub retries 5xx: say it once
                self.violations.append(message)

    def _dispatch(
        self,
        match: openapi.Match,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        headers: Mapping[str, str],
    ) -> tuple[int, Any, dict[str, str]]:
        for fault in self._faults:
            if fault.times > 0 and fault.method == method and fault.path.search(path):
                fault.times -= 1
                return fault.status, fault.body, dict(fault.headers)
        handler = ROUTES.get(match.operation.operation_id)
        if handler is None:
            self._violate(f"{method} {path}: {match.operation.operation_id} is not implemented")
            return 404, _error("Not Found (not implemented by the test double)"), {}
        try:
            with self._lock:
                ctx = Context(self, match, query, body, headers)
                ctx.authenticate()
                status, out, extra = handler(ctx)
        except HTTPError as e:
            body_out = (
                {"message": e.message, "documentation_url": DOCS}
                if e.status == 422
                else _error(e.message, e.status)
            )
            return e.status, body_out, e.headers
        except Exception as e:  # a bug in the double must fail the test, not hang it
            self._violate(f"{method} {path}: the double raised {type(e).__name__}: {e}")
            return 500, _error(f"test double crashed: {e}"), {}
        return status, out, extra


def _error(message: str, status: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"message": message, "documentation_url": DOCS}
    if status is not None:
        out["status"] = str(status)
    return out


class _Handler(BaseHTTPRequestHandler):
    double: GitHubDouble
    protocol_version = "HTTP/1.1"  # requests keeps connections alive; so do we

    def log_message(self, format: str, *args: Any) -> None:
        pass  # pytest shows violations; access logs would only be noise

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        status, body, extra = self.double.handle(self.command, self.path, headers, raw)
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        reset = int(time.time()) + 3600
        for name, value in {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": str(len(data)),
            "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
            **extra,
        }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


def paginate(
    ctx_url: str, items: list[Any], query: Mapping[str, list[str]]
) -> tuple[list[Any], dict[str, str]]:
    """GitHub's page/per_page with a Link header, which PyGithub's PaginatedList follows."""
    per_page = min(int((query.get("per_page") or ["30"])[0]), 100)
    page = max(int((query.get("page") or ["1"])[0]), 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []
    last = max(1, -(-len(items) // per_page))

    def link(n: int, rel: str) -> str:
        params = {k: v[0] for k, v in query.items()} | {"page": str(n), "per_page": str(per_page)}
        return f'<{ctx_url}?{urlencode(params)}>; rel="{rel}"'

    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return chunk, ({"Link": ", ".join(links)} if links else {})


def b64(data: bytes) -> str:
    # GitHub wraps base64 content at 60 columns; clients must cope, so we do it too.
    text = base64.b64encode(data).decode()
    return "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + "\n"


def quote_path(path: str) -> str:
    return quote(path, safe="/")


def jwt_claims(double: GitHubDouble, token: str) -> dict[str, Any]:
    """Verify an App JWT the way GitHub does: RS256 by the App's key, iss, short expiry."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            double._public_key,
            algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"]},
            leeway=60,
        )
    except jwt.PyJWTError as e:
        raise HTTPError(401, f"A JSON web token could not be decoded ({e})") from None
    if str(claims["iss"]) != str(double.app_id):
        raise HTTPError(401, "'Issuer' claim ('iss') must be the App id")
    if claims["exp"] - time.time() > 660:
        raise HTTPError(401, "'Expiration time' claim ('exp') is too far in the future")
    return claims


__all__ = [
    "PREFIX",
    "Comment",
    "Event",
    "GitHubDouble",
    "HTTPError",
    "Recorded",
    "RepoPaths",
    "Review",
]


# -- REST objects, built from the spec's own examples and filled with state ----------


def _rebase(value: Any, api: str, pairs: Mapping[str, str]) -> Any:
    """Point an example's URLs at the double and its placeholder names at ours."""
    if isinstance(value, dict):
        return {k: _rebase(v, api, pairs) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, api, pairs) for v in value]
    if isinstance(value, str):
        value = value.replace("https://api.github.com", api)
        for old, new in pairs.items():
            value = value.replace(old, new)
    return value


class Objects:
    """REST representations. Each starts from a components.examples entry, so fields we do
    not model keep GitHub's realistic values, and the response validator checks the result."""

    def __init__(self, gh: GitHubDouble) -> None:
        self.gh = gh

    def example(self, name: str, full_name: str | None = None) -> Any:
        pairs = {}
        if full_name:
            pairs = {"octocat/Hello-World": full_name, "github/hello-world": full_name}
        return _rebase(self.gh.spec.example(name), self.gh.api_url, pairs)

    def user(self, login: str, kind: str = "User") -> dict[str, Any]:
        uid = self.gh.user_id(login)
        api = f"{self.gh.api_url}/users/{login}"
        return {
            "login": login,
            "id": uid,
            "node_id": base64.b64encode(f"04:User{uid}".encode()).decode(),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"https://github.com/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": kind,
            "site_admin": False,
        }

    def bot(self) -> dict[str, Any]:
        return self.user(f"{self.gh.app_slug}[bot]", "Bot")

    def repo_urls(self, repo: Repo) -> dict[str, Any]:
        api = f"{self.gh.api_url}/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": base64.b64encode(f"010:Repository{repo.id}".encode()).decode(),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self.user(repo.owner),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": f"https://github.com/{repo.full_name}",
            "url": api,
            "clone_url": self.gh.clone_url(repo.full_name),
            "git_url": self.gh.clone_url(repo.full_name),
            "ssh_url": self.gh.clone_url(repo.full_name),
            "svn_url": f"https://github.com/{repo.full_name}",
            "default_branch": repo.default_branch,
            "fork": False,
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": now(),
        }

    def repository(self, repo: Repo, login: str | None, *, full: bool = True) -> dict[str, Any]:
        name = "full-repository-default-response" if full else "pull-request"
        if full:
            out: dict[str, Any] = self.example(name, repo.full_name)
            # Upstream drift: the example lacks `language`; we are not a fork or a template.
            for key in ("parent", "source", "template_repository", "organization"):
                out.pop(key, None)
            out["language"] = None
        else:
            out = self.example("pull-request", repo.full_name)["head"]["repo"]
        out.update(self.repo_urls(repo))
        perm = repo.permissions.get(login or "", "none") if login else "admin"
        out["permissions"] = {
            "admin": perm == "admin",
            "maintain": perm == "admin",
            "push": perm in ("admin", "write"),
            "triage": perm in ("admin", "write"),
            "pull": True,
        }
        return out

    def installation(self, account: str, installation_id: int) -> dict[str, Any]:
        out: dict[str, Any] = self.example("installation")
        api = self.gh.api_url
        out.update(
            id=installation_id,
            account=self.user(account, "Organization"),
            app_id=self.gh.app_id,
            app_slug=self.gh.app_slug,
            target_id=self.gh.user_id(account),
            target_type="Organization",
            permissions=dict(APP_PERMISSIONS),
            events=list(APP_EVENTS),
            repository_selection="all",
            access_tokens_url=f"{api}/app/installations/{installation_id}/access_tokens",
            repositories_url=f"{api}/installation/repositories",
            html_url=f"https://github.com/organizations/{account}/settings/installations/{installation_id}",
        )
        return out

    def integration(self) -> dict[str, Any]:
        out: dict[str, Any] = self.example("integration")
        owner = next(iter(self.gh.installations), "octo")
        out.update(
            id=self.gh.app_id,
            slug=self.gh.app_slug,
            name=self.gh.app_slug,
            owner=self.user(owner, "Organization"),
            permissions=dict(APP_PERMISSIONS),
            events=list(APP_EVENTS),
            html_url=f"https://github.com/apps/{self.gh.app_slug}",
            installations_count=len(self.gh.installations),
        )
        return out

    def branch(self, repo: Repo, branch: str, sha: str, login: str | None) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{branch}",
            "ref": branch,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repository(repo, login, full=False),
        }

    def pull(self, pull: Pull, login: str | None, *, simple: bool = False) -> dict[str, Any]:
        repo = self.gh.repo(pull.repo)
        found = self.example("pull-request-simple-items" if simple else "pull-request", pull.repo)
        out: dict[str, Any] = found[0] if simple else found
        api = f"{self.gh.api_url}/repos/{pull.repo}"
        head_sha = self.gh.head_sha(pull.repo, pull.number)
        base_sha = repo.tip(pull.base) or head_sha
        out.update(
            url=f"{api}/pulls/{pull.number}",
            id=pull.id,
            node_id=base64.b64encode(f"011:PullRequest{pull.id}".encode()).decode(),
            html_url=f"https://github.com/{pull.repo}/pull/{pull.number}",
            issue_url=f"{api}/issues/{pull.number}",
            comments_url=f"{api}/issues/{pull.number}/comments",
            commits_url=f"{api}/pulls/{pull.number}/commits",
            review_comments_url=f"{api}/pulls/{pull.number}/comments",
            statuses_url=f"{api}/statuses/{head_sha}",
            number=pull.number,
            state=pull.state,
            locked=False,
            title=pull.title,
            body=pull.body,
            user=self.user(pull.user),
            created_at=pull.created_at,
            updated_at=pull.updated_at,
            closed_at=pull.closed_at,
            merged_at=None,
            merge_commit_sha=None,
            draft=pull.draft,
            # Upstream drift: the example's requested team lacks `type`; we request nobody.
            assignee=None,
            assignees=[],
            requested_reviewers=[],
            requested_teams=[],
            labels=[],
            milestone=None,
            author_association="OWNER" if pull.user == repo.owner else "CONTRIBUTOR",
            head=self.branch(self.gh.repo(pull.head_repo or pull.repo), pull.head, head_sha, login),
            base=self.branch(repo, pull.base, base_sha, login),
        )
        out["_links"] = _rebase(out["_links"], self.gh.api_url, {"/1347": f"/{pull.number}"})
        if not simple:
            files = self.gh_files(pull)
            out.update(
                merged=False,
                mergeable=True,
                mergeable_state="clean",
                merged_by=None,
                comments=len(self.gh.comments(pull.repo, pull.number)),
                review_comments=0,
                commits=1,
                additions=sum(f["additions"] for f in files),
                deletions=sum(f["deletions"] for f in files),
                changed_files=len(files),
            )
        return out

    def gh_files(self, pull: Pull) -> list[dict[str, Any]]:
        """The PR's diff-entry list: a real diff from the merge base to the head tip."""
        repo = self.gh.repo(pull.repo)
        git = repo.git()
        head = self.gh.head_sha(pull.repo, pull.number)
        base_tip = repo.tip(pull.base)
        base = git.merge_base(base_tip, head) if base_tip else None
        # Unrelated histories have no merge base: diff against an empty tree, as GitHub does.
        empty = git.TreeBuilder().write()
        old_tree = git[base if base else empty].peel(pygit2.Tree)
        diff = old_tree.diff_to_tree(git[head].peel(pygit2.Tree))
        diff.find_similar()
        status = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied"}
        api = f"{self.gh.api_url}/repos/{pull.repo}"
        out = []
        for patch in diff:
            if patch is None:  # pygit2 types iteration as optional; skip rather than crash
                continue
            delta = patch.delta
            path = delta.new_file.path
            _, adds, dels = patch.line_stats
            text = patch.text or ""
            entry: dict[str, Any] = {
                "sha": str(delta.new_file.id),
                "filename": path,
                "status": status.get(delta.status_char(), "changed"),
                "additions": adds,
                "deletions": dels,
                "changes": adds + dels,
                "blob_url": f"https://github.com/{pull.repo}/blob/{head}/{quote_path(path)}",
                "raw_url": f"https://github.com/{pull.repo}/raw/{head}/{quote_path(path)}",
                "contents_url": f"{api}/contents/{quote_path(path)}?ref={head}",
                "patch": text[text.find("@@") :] if "@@" in text else "",
            }
            if delta.status_char() == "R":
                entry["previous_filename"] = delta.old_file.path
            out.append(entry)
        return out

    def check_run(self, run: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.example("check-run", run["repo"])
        out.update({k: v for k, v in run.items() if k != "repo"})
        out["url"] = f"{self.gh.api_url}/repos/{run['repo']}/check-runs/{run['id']}"
        out["html_url"] = f"https://github.com/{run['repo']}/runs/{run['id']}"
        out["node_id"] = base64.b64encode(f"08:CheckRun{run['id']}".encode()).decode()
        output = {"title": None, "summary": None, "text": None, **run.get("output", {})}
        out["output"] = {
            "title": output["title"],
            "summary": output["summary"],
            "text": output["text"],
            "annotations_count": len(output.get("annotations", [])),
            "annotations_url": f"{out['url']}/annotations",
        }
        out["app"] = self.integration()
        out["check_suite"] = {"id": run["id"] + 1}
        out["pull_requests"] = [
            {
                "id": p.id,
                "number": p.number,
                "url": f"{self.gh.api_url}/repos/{p.repo}/pulls/{p.number}",
                "head": {"ref": p.head, "sha": run["head_sha"], "repo": self._mini(p.repo)},
                "base": {
                    "ref": p.base,
                    "sha": self.gh.repo(p.repo).tip(p.base) or "",
                    "repo": self._mini(p.repo),
                },
            }
            for p in self.gh.pulls.values()
            if p.repo == run["repo"] and self.gh.head_sha(p.repo, p.number) == run["head_sha"]
        ]
        return out

    def _mini(self, full_name: str) -> dict[str, Any]:
        repo = self.gh.repo(full_name)
        return {"id": repo.id, "url": f"{self.gh.api_url}/repos/{full_name}", "name": repo.name}

    def comment(self, comment: Comment) -> dict[str, Any]:
        out: dict[str, Any] = self.example("issue-comment", comment.repo)
        repo = self.gh.repo(comment.repo)
        api = f"{self.gh.api_url}/repos/{comment.repo}"
        out.update(
            id=comment.id,
            node_id=base64.b64encode(f"012:IssueComment{comment.id}".encode()).decode(),
            url=f"{api}/issues/comments/{comment.id}",
            html_url=f"https://github.com/{comment.repo}/pull/{comment.number}#issuecomment-{comment.id}",
            issue_url=f"{api}/issues/{comment.number}",
            body=comment.body,
            user=self.bot() if comment.user.endswith("[bot]") else self.user(comment.user),
            created_at=comment.created_at,
            updated_at=comment.updated_at,
            author_association="OWNER" if comment.user == repo.owner else "CONTRIBUTOR",
        )
        out.pop("performed_via_github_app", None)
        out.pop("reactions", None)
        return out

    def review(self, review: Review) -> dict[str, Any]:
        out: dict[str, Any] = self.example("pull-request-review-items", review.repo)[0]
        api = f"{self.gh.api_url}/repos/{review.repo}/pulls/{review.number}"
        html = f"https://github.com/{review.repo}/pull/{review.number}"
        out.update(
            id=review.id,
            node_id=base64.b64encode(f"017:PullRequestReview{review.id}".encode()).decode(),
            user=self.user(review.user),
            body=review.body,
            state=review.state,
            commit_id=review.commit_id,
            submitted_at=review.submitted_at,
            html_url=f"{html}#pullrequestreview-{review.id}",
            pull_request_url=api,
            author_association="COLLABORATOR",
        )
        out["_links"] = {"html": {"href": out["html_url"]}, "pull_request": {"href": api}}
        return out

    def git_ref(self, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
        api = f"{self.gh.api_url}/repos/{repo.full_name}/git"
        out: dict[str, Any] = self.example("git-ref", repo.full_name)
        out.update(
            ref=ref,
            node_id=base64.b64encode(f"03:Ref{ref}".encode()).decode(),
            url=f"{api}/{ref}",
            object={"type": "commit", "sha": sha, "url": f"{api}/commits/{sha}"},
        )
        return out


# -- routes: one function per operationId -----------------------------------


class Context:
    """One request, authenticated: who is calling and which repository it names."""

    def __init__(
        self,
        gh: GitHubDouble,
        match: openapi.Match,
        query: dict[str, list[str]],
        body: Any,
        headers: Mapping[str, str],
    ) -> None:
        self.gh, self.match, self.query, self.headers = gh, match, query, headers
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}
        self.params = match.path_params
        self.objects = Objects(gh)
        self.token: Token | None = None
        self.app_jwt = False

    @property
    def login(self) -> str | None:
        """The acting user: a personal token's owner, or the App's bot user."""
        if self.token is None:
            return None
        return self.token.login or f"{self.gh.app_slug}[bot]"

    def authenticate(self) -> None:
        template = self.match.operation.template
        wants_jwt = template.startswith("/app") or template == "/repos/{owner}/{repo}/installation"
        header = {k.lower(): v for k, v in self.headers.items()}.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if template == "/rate_limit" and not header:
            return
        if scheme.lower() not in ("bearer", "token") or not credential:
            raise HTTPError(401, "Requires authentication")
        if wants_jwt:
            if credential.count(".") != 2:
                raise HTTPError(401, "A JSON web token could not be decoded")
            jwt_claims(self.gh, credential)
            self.app_jwt = True
            return
        token = self.gh.tokens.get(credential)
        if token is None or token.expires_at <= datetime.now(UTC):
            raise HTTPError(401, "Bad credentials")
        self.token = token

    def repo(self) -> Repo:
        full_name = f"{self.params['owner']}/{self.params['repo']}"
        repo = self.gh.repos.get(full_name)
        if repo is None:
            raise HTTPError(404, "Not Found")
        token = self.token
        if token is not None and token.installation_id is not None:
            # An installation token reaches only its account's repos (and a chosen subset).
            if self.gh.installations.get(repo.owner) != token.installation_id:
                raise HTTPError(404, "Not Found")
            if token.repositories is not None and repo.name not in token.repositories:
                raise HTTPError(404, "Not Found")
        elif (
            token is not None
            and repo.private
            and repo.permissions.get(token.login or "")
            in (
                None,
                "none",
            )
        ):
            raise HTTPError(404, "Not Found")
        return repo

    def pull(self) -> Pull:
        repo = self.repo()
        pull = self.gh.pulls.get((repo.full_name, int(self.params["pull_number"])))
        if pull is None:
            raise HTTPError(404, "Not Found")
        return pull

    def url(self) -> str:
        return f"{self.gh.api_url}{self.match.operation.template.format(**self.params)}"

    def page(self, items: list[Any]) -> tuple[int, Any, dict[str, str]]:
        chunk, headers = paginate(self.url(), items, self.query)
        return 200, chunk, headers

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


Result = tuple[int, Any, dict[str, str]]
ROUTES: dict[str, Callable[[Context], Result]] = {}


def route(
    operation_id: str,
) -> Callable[[Callable[[Context], Result]], Callable[[Context], Result]]:
    def register(fn: Callable[[Context], Result]) -> Callable[[Context], Result]:
        ROUTES[operation_id] = fn
        return fn

    return register


@route("apps/get-authenticated")
def _get_app(ctx: Context) -> Result:
    return 200, ctx.objects.integration(), {}


@route("apps/list-installations")
def _list_installations(ctx: Context) -> Result:
    return ctx.page([ctx.objects.installation(a, i) for a, i in ctx.gh.installations.items()])


@route("apps/get-repo-installation")
def _repo_installation(ctx: Context) -> Result:
    repo = ctx.repo()
    installation = ctx.gh.installations.get(repo.owner)
    if installation is None:
        raise HTTPError(404, "Not Found")
    return 200, ctx.objects.installation(repo.owner, installation), {}


@route("apps/create-installation-access-token")
def _access_token(ctx: Context) -> Result:
    installation_id = int(ctx.params["installation_id"])
    if installation_id not in ctx.gh.installations.values():
        raise HTTPError(404, "Not Found")
    wanted = ctx.body.get("permissions") or dict(APP_PERMISSIONS)
    for name, level in wanted.items():
        granted = APP_PERMISSIONS.get(name)
        if granted is None or (level == "write" and granted != "write"):
            raise HTTPError(
                422, f"The permissions requested are not granted to this installation: {name}"
            )
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    token = Token(
        "ghs_" + secrets.token_hex(18),
        installation_id,
        None,
        expires,
        ctx.body.get("repositories"),
        dict(wanted),
    )
    ctx.gh.tokens[token.token] = token
    out: dict[str, Any] = ctx.objects.example("installation-token")
    out.pop("repositories", None)
    out.update(
        token=token.token,
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        permissions=token.permissions,
        repository_selection="selected" if token.repositories is not None else "all",
    )
    return 201, out, {}


@route("repos/get")
def _get_repo(ctx: Context) -> Result:
    return 200, ctx.objects.repository(ctx.repo(), ctx.token.login if ctx.token else None), {}


@route("pulls/list")
def _list_pulls(ctx: Context) -> Result:
    repo = ctx.repo()
    state = ctx.q("state", "open")
    pulls = [
        p
        for (r, _), p in sorted(ctx.gh.pulls.items(), key=lambda kv: -kv[0][1])
        if r == repo.full_name
        and state in ("all", p.state)
        and ctx.q("base") in (None, p.base)
        and ctx.q("head") in (None, f"{repo.owner}:{p.head}")
    ]
    return ctx.page([ctx.objects.pull(p, ctx.login, simple=True) for p in pulls])


@route("pulls/get")
def _get_pull(ctx: Context) -> Result:
    return 200, ctx.objects.pull(ctx.pull(), ctx.login), {}


@route("pulls/create")
def _create_pull(ctx: Context) -> Result:
    repo = ctx.repo()
    head = str(ctx.body["head"]).split(":")[-1]
    pull = ctx.gh._new_pull(
        repo.full_name,
        head,
        ctx.body["base"],
        ctx.login or "dana",
        ctx.body.get("title", head),
        ctx.body.get("body"),
        bool(ctx.body.get("draft", False)),
    )
    return 201, ctx.objects.pull(pull, ctx.login), {}


@route("pulls/list-files")
def _pull_files(ctx: Context) -> Result:
    return ctx.page(ctx.objects.gh_files(ctx.pull()))


@route("pulls/list-reviews")
def _pull_reviews(ctx: Context) -> Result:
    pull = ctx.pull()
    return ctx.page([ctx.objects.review(r) for r in ctx.gh.reviews(pull.repo, pull.number)])


def _sha_of(repo: Repo, ref: str) -> str | None:
    git = repo.git()
    for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        try:
            return str(git.revparse_single(candidate).peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            continue
    return None


@route("checks/create")
def _create_check(ctx: Context) -> Result:
    repo = ctx.repo()
    sha = _sha_of(repo, ctx.body["head_sha"])
    if sha is None or sha != ctx.body["head_sha"]:
        raise HTTPError(422, "No commit found for SHA: " + ctx.body["head_sha"])
    run_id = ctx.gh.next_id()
    run: dict[str, Any] = {
        "repo": repo.full_name,
        "id": run_id,
        "head_sha": sha,
        "name": ctx.body["name"],
        "status": "queued",
        "conclusion": None,
        "started_at": now(),
        "completed_at": None,
        "external_id": "",
        "details_url": None,
        "output": {},
    }
    _apply_check_update(run, ctx.body)
    ctx.gh._check_runs[run_id] = run
    return 201, ctx.objects.check_run(run), {}


def _apply_check_update(run: dict[str, Any], body: Mapping[str, Any]) -> None:
    for key in (
        "name",
        "status",
        "conclusion",
        "started_at",
        "completed_at",
        "external_id",
        "details_url",
    ):
        if key in body:
            run[key] = body[key]
    if "output" in body:
        annotations = run["output"].get("annotations", []) + body["output"].get("annotations", [])
        run["output"] = {**body["output"], "annotations": annotations}
    if body.get("conclusion"):
        run["status"] = "completed"  # as GitHub does: a conclusion completes the run
    if run["status"] == "completed":
        if not run["conclusion"]:
            raise HTTPError(422, "conclusion is required when status is completed")
        run["completed_at"] = run["completed_at"] or now()


@route("checks/update")
def _update_check(ctx: Context) -> Result:
    repo = ctx.repo()
    run = ctx.gh._check_runs.get(int(ctx.params["check_run_id"]))
    if run is None or run["repo"] != repo.full_name:
        raise HTTPError(404, "Not Found")
    _apply_check_update(run, ctx.body)
    return 200, ctx.objects.check_run(run), {}


@route("checks/list-for-ref")
def _checks_for_ref(ctx: Context) -> Result:
    repo = ctx.repo()
    sha = _sha_of(repo, ctx.params["ref"])
    if sha is None:
        raise HTTPError(422, f"No commit found for SHA: {ctx.params['ref']}")
    runs = [r for r in ctx.gh.check_runs(repo.full_name) if r["head_sha"] == sha]
    if ctx.q("check_name"):
        runs = [r for r in runs if r["name"] == ctx.q("check_name")]
    if ctx.q("status"):
        runs = [r for r in runs if r["status"] == ctx.q("status")]
    if ctx.q("filter", "latest") == "latest":
        latest = {r["name"]: r for r in sorted(runs, key=lambda r: r["id"])}
        runs = list(latest.values())
    chunk, headers = paginate(ctx.url(), sorted(runs, key=lambda r: -r["id"]), ctx.query)
    body = {"total_count": len(runs), "check_runs": [ctx.objects.check_run(r) for r in chunk]}
    return 200, body, headers


def _issue_exists(ctx: Context) -> tuple[Repo, int]:
    repo = ctx.repo()
    number = int(ctx.params["issue_number"])
    if (repo.full_name, number) not in ctx.gh.pulls and (repo.full_name, number) not in (
        ctx.gh.issues
    ):
        raise HTTPError(404, "Not Found")
    return repo, number


@route("issues/list-comments")
def _list_comments(ctx: Context) -> Result:
    repo, number = _issue_exists(ctx)
    return ctx.page([ctx.objects.comment(c) for c in ctx.gh.comments(repo.full_name, number)])


@route("issues/create-comment")
def _create_comment(ctx: Context) -> Result:
    repo, number = _issue_exists(ctx)
    stamp = now()
    comment = Comment(
        repo.full_name, number, ctx.gh.next_id(), ctx.login or "", ctx.body["body"], stamp, stamp
    )
    ctx.gh._comments[comment.id] = comment
    return 201, ctx.objects.comment(comment), {}


def _own_comment(ctx: Context) -> Comment:
    repo = ctx.repo()
    comment = ctx.gh._comments.get(int(ctx.params["comment_id"]))
    if comment is None or comment.repo != repo.full_name:
        raise HTTPError(404, "Not Found")
    return comment


@route("issues/update-comment")
def _update_comment(ctx: Context) -> Result:
    comment = _own_comment(ctx)
    if comment.user != ctx.login and ctx.gh.repo(comment.repo).permissions.get(
        ctx.login or ""
    ) not in ("admin", "write"):
        raise HTTPError(403, "Must have write access to edit another user's comment")
    comment.body, comment.updated_at = ctx.body["body"], now()
    return 200, ctx.objects.comment(comment), {}


@route("reactions/create-for-issue-comment")
def _react(ctx: Context) -> Result:
    comment = _own_comment(ctx)
    user = ctx.login or ""
    for existing in comment.reactions:
        if existing["user"] == user and existing["content"] == ctx.body["content"]:
            return 200, _reaction(ctx, existing), {}  # GitHub: 200 when it already exists
    reaction = {
        "id": ctx.gh.next_id(),
        "user": user,
        "content": ctx.body["content"],
        "created_at": now(),
    }
    comment.reactions.append(reaction)
    return 201, _reaction(ctx, reaction), {}


def _reaction(ctx: Context, reaction: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = ctx.objects.example("reaction")
    user = reaction["user"]
    out.update(
        id=reaction["id"],
        node_id=base64.b64encode(f"08:Reaction{reaction['id']}".encode()).decode(),
        user=ctx.objects.bot() if user.endswith("[bot]") else ctx.objects.user(user),
        content=reaction["content"],
        created_at=reaction["created_at"],
    )
    return out


@route("repos/get-collaborator-permission-level")
def _permission(ctx: Context) -> Result:
    repo = ctx.repo()
    login = ctx.params["username"]
    permission = repo.permissions.get(login, "none")
    out: dict[str, Any] = ctx.objects.example(
        "repository-collaborator-permission-response-if-user-has-admin-permissions"
    )
    user = ctx.objects.user(login)
    # Upstream drift: the example's user lacks `role_name`, which the schema requires.
    user["role_name"] = ROLE[permission]
    user["permissions"] = {
        "admin": permission == "admin",
        "maintain": permission == "admin",
        "push": permission in ("admin", "write"),
        "triage": permission in ("admin", "write"),
        "pull": permission != "none",
    }
    out.update(permission=permission, role_name=ROLE[permission], user=user)
    return 200, out, {}


@route("repos/get-content")
def _contents(ctx: Context) -> Result:
    repo = ctx.repo()
    ref = ctx.q("ref") or repo.default_branch
    sha = _sha_of(repo, ref)
    if sha is None:
        raise HTTPError(404, f"No commit found for the ref {ref}")
    git = repo.git()
    path = ctx.params["path"].strip("/")
    try:
        obj = git[sha].peel(pygit2.Commit).tree[path] if path else git[sha].peel(pygit2.Tree)
    except KeyError:
        raise HTTPError(404, "Not Found") from None
    api = f"{ctx.gh.api_url}/repos/{repo.full_name}"

    def entry(name: str, entry_path: str, item: Any) -> dict[str, Any]:
        kind = "dir" if item.type == pygit2.enums.ObjectType.TREE else "file"
        url = f"{api}/contents/{quote_path(entry_path)}?ref={quote(ref)}"
        git_url = f"{api}/git/{'trees' if kind == 'dir' else 'blobs'}/{item.id}"
        view = "tree" if kind == "dir" else "blob"
        html = f"https://github.com/{repo.full_name}/{view}/{ref}/{entry_path}"
        return {
            "type": kind,
            "size": item.size if kind == "file" else 0,
            "name": name,
            "path": entry_path,
            "sha": str(item.id),
            "url": url,
            "git_url": git_url,
            "html_url": html,
            "download_url": None if kind == "dir" else f"{api}/raw/{ref}/{entry_path}",
            "_links": {"self": url, "git": git_url, "html": html},
        }

    if isinstance(obj, pygit2.Tree):
        base = f"{path}/" if path else ""
        return 200, [entry(e.name or "", base + (e.name or ""), git[e.id]) for e in obj], {}
    blob = git[obj.id].peel(pygit2.Blob)
    out = entry(path.rsplit("/", 1)[-1], path, blob)
    out.update(encoding="base64", content=b64(blob.data))
    return 200, out, {}


@route("git/get-ref")
def _get_ref(ctx: Context) -> Result:
    repo = ctx.repo()
    ref = f"refs/{ctx.params['ref']}"
    found = repo.git().references.get(ref)
    if found is None:
        raise HTTPError(404, "Not Found")
    return 200, ctx.objects.git_ref(repo, ref, str(found.peel(pygit2.Commit).id)), {}


@route("git/create-ref")
def _create_ref(ctx: Context) -> Result:
    repo = ctx.repo()
    ref, sha = ctx.body["ref"], ctx.body["sha"]
    if not ref.startswith("refs/") or ref.count("/") < 2:
        raise HTTPError(422, "Reference name must start with 'refs/' and have two slashes")
    if _sha_of(repo, sha) != sha:
        raise HTTPError(422, "Object does not exist")
    git = repo.git()
    if git.references.get(ref) is not None:
        raise HTTPError(422, "Reference already exists")
    git.references.create(ref, pygit2.Oid(hex=sha))
    return 201, ctx.objects.git_ref(repo, ref, sha), {}


@route("apps/list-webhook-deliveries")
def _deliveries(ctx: Context) -> Result:
    items = sorted(ctx.gh.deliveries, key=lambda d: -d.id)
    if ctx.q("status"):
        ok = ctx.q("status") == "success"
        items = [d for d in items if (d.status_code < 400) == ok]
    # GitHub pages deliveries by cursor, not page number: the cursor is the last id seen.
    per_page = min(int(ctx.q("per_page", "30") or 30), 100)
    cursor = ctx.q("cursor")
    if cursor:
        items = [d for d in items if d.id < int(cursor)]
    chunk = items[:per_page]
    headers = {}
    if len(items) > per_page:
        params = urlencode({"per_page": per_page, "cursor": chunk[-1].id})
        headers["Link"] = f'<{ctx.gh.api_url}/app/hook/deliveries?{params}>; rel="next"'
    template = ctx.objects.example("hook-delivery-items")[0]
    out = [
        {
            **template,
            "id": d.id,
            "guid": d.guid,
            "delivered_at": d.delivered_at,
            "redelivery": d.redelivery,
            "status": "OK" if d.status_code < 400 else "Invalid HTTP Response: 500",
            "status_code": d.status_code,
            "event": d.event,
            "action": d.action,
            "installation_id": d.installation_id,
            "repository_id": d.repository_id,
            "throttled_at": None,
        }
        for d in chunk
    ]
    return 200, out, headers


@route("apps/redeliver-webhook-delivery")
def _redeliver(ctx: Context) -> Result:
    delivery_id = int(ctx.params["delivery_id"])
    original = next((d for d in ctx.gh.deliveries if d.id == delivery_id), None)
    if original is None:
        raise HTTPError(404, "Not Found")
    ctx.gh.redelivered.append(delivery_id)
    again = ctx.gh.record_delivery(original.event, original.payload, guid=original.guid)
    again.redelivery = True
    return 202, {}, {}


@route("rate-limit/get")
def _rate_limit(ctx: Context) -> Result:
    out: dict[str, Any] = ctx.objects.example("rate-limit-overview")
    reset = int(time.time()) + 3600
    for bucket in [*out["resources"].values(), out["rate"]]:
        bucket["reset"] = reset
    return 200, out, {}


# -- webhook payloads, derived from GitHub's real examples --------------------------

WEBHOOK_EXAMPLES = GITHUB / "webhook-examples.json"
WEBHOOK_SCHEMA = GITHUB / "webhook-schema.json"
# Examples that fail their own schema (upstream drift), so builders never start from them.
SKIPPED_WEBHOOK_EXAMPLES: dict[str, str] = {}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@functools.cache
def _webhook_data() -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    examples = {e["name"]: e["examples"] for e in json.loads(WEBHOOK_EXAMPLES.read_text())}
    return examples, json.loads(WEBHOOK_SCHEMA.read_text())


def _webhook_errors(event: str, action: str, payload: Any) -> list[str]:
    _, schema = _webhook_data()
    validator = jsonschema.Draft7Validator({**schema, "$ref": f"#/definitions/{event}${action}"})
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(payload)][
        :5
    ]


@functools.cache
def _webhook_example(event: str, action: str) -> str:
    """JSON of a real example for event/action that passes its own schema."""
    examples, _ = _webhook_data()
    valid = []
    for i, example in enumerate(examples[event]):
        if example.get("action") != action:
            continue
        errors = _webhook_errors(event, action, example)
        if errors:
            SKIPPED_WEBHOOK_EXAMPLES[f"{event}[{i}]"] = "fails its own schema: " + errors[0]
            continue
        valid.append(example)
    # Prefer an App delivery (it carries `installation`); otherwise the builder adds one.
    valid.sort(key=lambda example: "installation" not in example)
    if valid:
        return json.dumps(valid[0])
    raise LookupError(f"no valid App example for {event}.{action}")


class PayloadBuilder:
    """Real example payloads with only what the scenario needs changed: numbers, shas,
    refs, repository names and user logins. Each result is checked against the schema."""

    def __init__(self, gh: GitHubDouble) -> None:
        self.gh = gh

    def _start(self, event: str, action: str, full_name: str) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(_webhook_example(event, action))
        old = payload["repository"]["full_name"]
        payload = _rebase(payload, self.gh.api_url, {old + "/": full_name + "/", old: full_name})
        repo = self.gh.repo(full_name)
        self._repository(payload["repository"], repo)
        installation = self.gh.installations.get(repo.owner)
        if installation is not None:
            payload["installation"] = {
                "id": installation,
                "node_id": base64.b64encode(f"023:Installation{installation}".encode()).decode(),
            }
        return payload

    def _user(self, template: dict[str, Any], login: str) -> dict[str, Any]:
        old = template["login"]
        out: dict[str, Any] = _rebase(template, self.gh.api_url, {f"/{old}": f"/{login}"})
        uid = self.gh.user_id(login)
        out.update(login=login, id=uid, node_id=base64.b64encode(f"04:User{uid}".encode()).decode())
        out["type"] = "Bot" if login.endswith("[bot]") else template.get("type", "User")
        return out

    def _repository(self, target: dict[str, Any], repo: Repo) -> None:
        urls = Objects(self.gh).repo_urls(repo)
        owner = self._user(target["owner"], repo.owner)
        target.update({k: v for k, v in urls.items() if k in target or k in ("clone_url",)})
        target["owner"] = owner
        target["name"], target["full_name"] = repo.name, repo.full_name
        for key in ("created_at", "updated_at", "pushed_at"):
            if isinstance(target.get(key), int):  # webhooks give some times as epoch seconds
                target[key] = int(time.time())

    def _finish(self, event: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        errors = _webhook_errors(event, action, payload)
        assert not errors, f"the double built an off-schema {event}.{action} payload: {errors}"
        return payload

    def _pull_fields(self, target: dict[str, Any], pull: Pull, repo: Repo) -> None:
        api = f"{self.gh.api_url}/repos/{pull.repo}"
        head = self.gh.head_sha(pull.repo, pull.number)
        target.update(
            url=f"{api}/pulls/{pull.number}",
            id=pull.id,
            number=pull.number,
            html_url=f"https://github.com/{pull.repo}/pull/{pull.number}",
            issue_url=f"{api}/issues/{pull.number}",
            comments_url=f"{api}/issues/{pull.number}/comments",
            statuses_url=f"{api}/statuses/{head}",
            title=pull.title,
            body=pull.body,
            state=pull.state,
            draft=pull.draft,
            created_at=pull.created_at,
            updated_at=pull.updated_at,
            closed_at=pull.closed_at,
            user=self._user(target["user"], pull.user),
        )
        head_repo = self.gh.repo(pull.head_repo or pull.repo)
        for side, branch, sha, where in (
            ("head", pull.head, head, head_repo),
            ("base", pull.base, repo.tip(pull.base) or head, repo),
        ):
            part = target[side]
            part.update(label=f"{where.owner}:{branch}", ref=branch, sha=sha)
            part["user"] = self._user(part["user"], where.owner)
            self._repository(part["repo"], where)

    def pull_request(
        self, full_name: str, number: int, action: str = "opened", *, sender: str | None = None
    ) -> dict[str, Any]:
        pull = self.gh.pulls[(full_name, number)]
        repo = self.gh.repo(full_name)
        payload = self._start("pull_request", action, full_name)
        payload["number"] = number
        self._pull_fields(payload["pull_request"], pull, repo)
        if action == "synchronize":
            payload["after"] = self.gh.head_sha(full_name, number)
        payload["sender"] = self._user(payload["sender"], sender or pull.user)
        return self._finish("pull_request", action, payload)

    def review(self, review: Review) -> dict[str, Any]:
        pull = self.gh.pulls[(review.repo, review.number)]
        repo = self.gh.repo(review.repo)
        payload = self._start("pull_request_review", "submitted", review.repo)
        self._pull_fields(payload["pull_request"], pull, repo)
        r = payload["review"]
        api = f"{self.gh.api_url}/repos/{review.repo}/pulls/{review.number}"
        html = (
            f"https://github.com/{review.repo}/pull/{review.number}#pullrequestreview-{review.id}"
        )
        # The one change no example covers: `approved` (see /work/shared/github/README.md).
        r.update(
            id=review.id,
            state=review.state.lower(),
            body=review.body or None,
            commit_id=review.commit_id,
            submitted_at=review.submitted_at,
            html_url=html,
            pull_request_url=api,
            user=self._user(r["user"], review.user),
        )
        r["_links"] = {"html": {"href": html}, "pull_request": {"href": api}}
        payload["sender"] = self._user(payload["sender"], review.user)
        return self._finish("pull_request_review", "submitted", payload)

    def issue(self, full_name: str, number: int, action: str) -> dict[str, Any]:
        state = self.gh.issues[(full_name, number)]
        payload = self._start("issues", action, full_name)
        api = f"{self.gh.api_url}/repos/{full_name}"
        issue = payload["issue"]
        template = issue["labels"][0] if issue.get("labels") else {}
        issue.update(
            number=number,
            url=f"{api}/issues/{number}",
            comments_url=f"{api}/issues/{number}/comments",
            html_url=f"https://github.com/{full_name}/issues/{number}",
            title=state["title"],
            body=state["body"],
            user=self._user(issue["user"], state["user"]),
            labels=[{**template, "name": name} for name in state["labels"]],
        )
        issue.pop("pull_request", None)
        if action == "labeled" and state["labels"]:
            payload["label"] = {**template, "name": state["labels"][-1]}
        payload["sender"] = self._user(payload["sender"], state["user"])
        return self._finish("issues", action, payload)

    def issue_comment(
        self,
        comment: Comment,
        action: str,
        *,
        previous: str | None = None,
        sender: str | None = None,
    ) -> dict[str, Any]:
        pull = self.gh.pulls.get((comment.repo, comment.number))
        payload = self._start("issue_comment", action, comment.repo)
        api = f"{self.gh.api_url}/repos/{comment.repo}"
        issue = payload["issue"]
        issue.update(
            number=comment.number,
            url=f"{api}/issues/{comment.number}",
            comments_url=f"{api}/issues/{comment.number}/comments",
            html_url=f"https://github.com/{comment.repo}/pull/{comment.number}",
            title=pull.title if pull else issue["title"],
            body=pull.body if pull else issue["body"],
            user=self._user(issue["user"], pull.user if pull else comment.user),
        )
        if pull is not None:  # a comment on a PR arrives as an issue carrying `pull_request`
            issue["id"] = pull.id
            issue["pull_request"] = {
                "url": f"{api}/pulls/{comment.number}",
                "html_url": f"https://github.com/{comment.repo}/pull/{comment.number}",
                "diff_url": f"https://github.com/{comment.repo}/pull/{comment.number}.diff",
                "patch_url": f"https://github.com/{comment.repo}/pull/{comment.number}.patch",
                "merged_at": None,
            }
        c = payload["comment"]
        c.update(
            id=comment.id,
            body=comment.body,
            url=f"{api}/issues/comments/{comment.id}",
            html_url=f"https://github.com/{comment.repo}/pull/{comment.number}#issuecomment-{comment.id}",
            issue_url=f"{api}/issues/{comment.number}",
            created_at=comment.created_at,
            updated_at=comment.updated_at,
            user=self._user(c["user"], comment.user),
        )
        if action == "edited":
            payload["changes"] = {"body": {"from": previous or ""}}
        payload["sender"] = self._user(payload["sender"], sender or comment.user)
        return self._finish("issue_comment", action, payload)
