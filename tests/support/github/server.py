"""`GitHubDouble`: arranging and inspecting state, and serving it over HTTP, spec-checked."""

from __future__ import annotations

import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pygit2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import openapi
from .chaos import Chaos
from .oauth import OAuthFlow
from .payloads import PayloadBuilder, sign
from .routes import ROUTES, Context
from .state import (
    DOCS,
    PREFIX,
    ROLE,
    SECONDARY_RATE_LIMIT,
    Comment,
    Delivery,
    Event,
    Fault,
    HTTPError,
    Pull,
    Recorded,
    Repo,
    RepoPaths,
    Review,
    Token,
    now,
)


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
        self.dispatches: list[tuple[str, str, str, dict[str, Any]]] = []
        """(repo, workflow file, ref, inputs) of every workflow_dispatch asked for."""
        self.deliveries: list[Delivery] = []
        self.tokens: dict[str, Token] = {}
        self._faults: list[Fault] = []
        self.chaos: Chaos | None = None
        """Seeded faults on a share of all calls (tests.support.github.chaos), when set."""
        self._ids = itertools.count(1001)
        self._user_ids: dict[str, int] = {}
        """login -> numeric id of every account that exists; a rename moves the id."""
        self._uids = itertools.count(5000)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.api_url = ""
        self.payloads = PayloadBuilder(self)
        self.oauth = OAuthFlow(self)
        """The OAuth web flow on the double's web origin (`oauth.web_url`): not REST."""

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
        """The id of the account called login, registering it on first use."""
        with self._lock:
            if login not in self._user_ids:
                self._user_ids[login] = next(self._uids)
            return self._user_ids[login]

    def find_user(self, login: str) -> tuple[str, int] | None:
        """(login as registered, id) of an existing account; logins ignore case, as on
        GitHub. Unlike user_id, never registers anyone."""
        with self._lock:
            for name, uid in self._user_ids.items():
                if name.casefold() == login.casefold():
                    return name, uid
        return None

    def rename_user(self, old: str, new: str) -> int:
        """The account `old` is now called `new` (its id stays); `old` is free for anyone
        to register, and whoever next acts as `old` is a different account."""
        with self._lock:
            if self.find_user(new) is not None:
                raise ValueError(f"the login {new!r} is taken")
            uid = self._user_ids.pop(old)
            self._user_ids[new] = uid
            return uid

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
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` matching requests fail (after spec validation, before auth),
        with message and headers instead of the usual ones when given."""
        sent: dict[str, str] = {}
        default = "Server Error" if status >= 500 else "Forbidden"
        if secondary_rate_limit:
            status, default = 403, SECONDARY_RATE_LIMIT
            sent["Retry-After"] = str(retry_after if retry_after is not None else 1)
        elif retry_after is not None:
            sent["Retry-After"] = str(retry_after)
        sent.update(headers or {})
        text = message if message is not None else default
        body = {"message": text, "documentation_url": DOCS, "status": str(status)}
        self._faults.append(
            Fault(method.upper(), re.compile(path_regex), status, times, body, sent)
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
        submitted_at: str | None = None,
    ) -> Event:
        """A review by `reviewer` (default on the current head, submitted now); returns
        (id, submitted payload)."""
        review = Review(
            full_name,
            number,
            self.next_id(),
            reviewer,
            state.upper(),
            body,
            commit_id or self.head_sha(full_name, number),
            submitted_at or now(),
        )
        self._reviews.append(review)
        return Event(review.id, self.payloads.review(review))

    def dismiss_review(self, review_id: int, *, by: str = "octo") -> Event:
        """A maintainer (`by`) dismisses a review; returns (id, dismissed payload)."""
        review = next(r for r in self._reviews if r.id == review_id)
        review.state = "DISMISSED"
        return Event(review.id, self.payloads.review(review, "dismissed", sender=by))

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
                    time.monotonic(),
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
        if not self.path.startswith(PREFIX + "/"):  # github.com's web side: the OAuth flow
            status, data, extra = self.double.oauth.handle(self.command, self.path, headers, raw)
            self.send_response(status)
            for name, value in {"Content-Length": str(len(data)), **extra}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            return
        chaos = self.double.chaos
        fault = chaos.draw(self.command, self.path) if chaos is not None else None
        if fault is not None and chaos is not None and self._misbehave(fault, chaos):
            return
        status, body, extra = self.double.handle(self.command, self.path, headers, raw)
        if fault == "dropped-after-write":  # done, and the client never hears it
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
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

    def _misbehave(self, fault: str, chaos: Chaos) -> bool:
        """Answer with the fault instead of the API (True), or let the call through."""
        if fault == "slow":
            time.sleep(chaos.slow)
            return False
        if fault == "dropped-after-write":
            return False
        if fault == "timeout":  # not acted on; the answer comes too late to be read
            time.sleep(chaos.timeout + 0.3)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        status, message = {
            "5xx": (502, "Server Error"),
            "403-secondary": (403, SECONDARY_RATE_LIMIT),
            "429": (429, "API rate limit exceeded"),
        }[fault]
        data = json.dumps({"message": message, "documentation_url": DOCS}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status != 502:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)
        return True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve
