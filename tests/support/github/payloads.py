"""Webhook payloads, derived from GitHub's real examples, and their signatures."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

import jsonschema

from tests.support.shared import GITHUB

from .objects import Objects, _rebase
from .state import Comment, Pull, Repo, Review

if TYPE_CHECKING:
    from .server import GitHubDouble

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

    def review(
        self, review: Review, action: str = "submitted", *, sender: str | None = None
    ) -> dict[str, Any]:
        """pull_request_review.submitted, or .dismissed once the review was dismissed."""
        pull = self.gh.pulls[(review.repo, review.number)]
        repo = self.gh.repo(review.repo)
        payload = self._start("pull_request_review", action, review.repo)
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
        payload["sender"] = self._user(payload["sender"], sender or review.user)
        return self._finish("pull_request_review", action, payload)

    def workflow_run(
        self, full_name: str, run_id: int, conclusion: str = "success"
    ) -> dict[str, Any]:
        """workflow_run.completed for a run of the repo's agentplane workflow."""
        payload = self._start("workflow_run", "completed", full_name)
        run = payload["workflow_run"]
        run.update(id=run_id, status="completed", conclusion=conclusion)
        return self._finish("workflow_run", "completed", payload)

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
