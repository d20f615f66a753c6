"""REST routes: one function per operationId, registered in `ROUTES`."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

import pygit2

from .. import openapi
from .helpers import b64, jwt_claims, paginate, quote_path
from .objects import Objects
from .state import APP_PERMISSIONS, ROLE, Comment, HTTPError, Pull, Repo, Token, now

if TYPE_CHECKING:
    from .server import GitHubDouble


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


def _public_user(ctx: Context, login: str) -> dict[str, Any]:
    """GitHub's public user object for login, as the spec's example shapes it."""
    out: dict[str, Any] = ctx.objects.example("public-user-default-response")
    out.update(ctx.objects.user(login))
    out.update(
        name=None,
        company=None,
        blog="",
        location=None,
        email=None,
        bio=None,
        twitter_username=None,
        public_repos=0,
        public_gists=0,
        followers=0,
        following=0,
    )
    return out


@route("users/get-by-username")
def _get_user(ctx: Context) -> Result:
    """A public profile; 404 for a login no account has (a renamed one's old login)."""
    found = ctx.gh.find_user(ctx.params["username"])
    if found is None:
        raise HTTPError(404, "Not Found")
    login, _ = found
    out = _public_user(ctx, login)
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


@route("repos/get-branch-rules")
def _branch_rules(ctx: Context) -> Result:
    """The rules active on a branch; readable with Metadata, unlike the rulesets' bypass
    actors, which need Administration (the bot cannot see who may bypass)."""
    repo = ctx.repo()
    branch = unquote(ctx.params["branch"])
    rules = [
        {
            "type": kind,
            "ruleset_source_type": "Repository",
            "ruleset_source": repo.full_name,
            "ruleset_id": 42,
        }
        for kind in repo.rules.get(branch, [])
    ]
    return ctx.page(rules)


def _workflow_file(ctx: Context) -> tuple[Repo, str]:
    """The repo and the workflow file the path names; 404 unless it is on the default branch
    (a workflow id number is not modelled: agentplane names its workflow by file)."""
    repo = ctx.repo()
    name = str(ctx.params["workflow_id"])
    tip = repo.tip(repo.default_branch)
    tree = None if tip is None else repo.git()[tip].peel(pygit2.Commit).tree
    try:
        found = tree is not None and tree[f".github/workflows/{name}"] is not None
    except KeyError:
        found = False
    if not found:
        raise HTTPError(404, "Not Found")
    return repo, name


@route("actions/get-workflow")
def _get_workflow(ctx: Context) -> Result:
    repo, name = _workflow_file(ctx)
    path = f".github/workflows/{name}"
    ident = int.from_bytes(name.encode()[:6].ljust(6, b"\0"), "big") % 10**9
    html = f"https://github.com/{repo.full_name}/blob/{repo.default_branch}/{path}"
    return (
        200,
        {
            "id": ident,
            "node_id": b64(f"W_{ident}".encode()),
            "name": name,
            "path": path,
            "state": "active",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "url": f"{ctx.gh.api_url}/repos/{repo.full_name}/actions/workflows/{ident}",
            "html_url": html,
            "badge_url": f"https://github.com/{repo.full_name}/workflows/{name}/badge.svg",
        },
        {},
    )


@route("actions/create-workflow-dispatch")
def _dispatch_workflow(ctx: Context) -> Result:
    repo, name = _workflow_file(ctx)
    token = ctx.token
    app = token is not None and token.installation_id is not None
    if app and token is not None and (token.permissions or {}).get("actions") != "write":
        raise HTTPError(403, "Resource not accessible by integration")
    ref = str(ctx.body.get("ref", ""))
    if repo.tip(ref.removeprefix("refs/heads/")) is None:
        raise HTTPError(422, f"No ref found for: {ref}")
    inputs = ctx.body.get("inputs") or {}
    if not all(isinstance(v, str) for v in inputs.values()):
        raise HTTPError(422, "inputs must be strings")
    with ctx.gh._lock:
        ctx.gh.dispatches.append((repo.full_name, name, ref, dict(inputs)))
    return 204, None, {}


@route("rate-limit/get")
def _rate_limit(ctx: Context) -> Result:
    out: dict[str, Any] = ctx.objects.example("rate-limit-overview")
    reset = int(time.time()) + 3600
    for bucket in [*out["resources"].values(), out["rate"]]:
        bucket["reset"] = reset
    return 200, out, {}


@route("users/get-authenticated")
def _authenticated_user(ctx: Context) -> Result:
    """The token's own account: a user token's (OAuth sign-in) or a personal token's; an
    installation token acts for no person and is refused, as on GitHub."""
    token = ctx.token
    if token is None or token.installation_id is not None or not token.login:
        raise HTTPError(403, "Resource not accessible by integration")
    out = _public_user(ctx, token.login)
    out["user_view_type"] = "public"
    return 200, out, {}
