"""REST objects, built from the spec's own examples and filled with state."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pygit2

from .helpers import quote_path
from .state import APP_EVENTS, APP_PERMISSIONS, Comment, Pull, Repo, Review, now

if TYPE_CHECKING:
    from .server import GitHubDouble


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
