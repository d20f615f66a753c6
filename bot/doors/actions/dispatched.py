"""A run the bot sends to an Actions runner (workflow_dispatch): the request it passes as the
workflow's `request` input, and the check that what came back is the run it asked for.

The runner starts the run from this request through the same engine path as any door, signs
its records with the key policy lists, and pushes them; the bot adopts them (only signed
entries join its log, see bot.doors.github.checkout) and then believes a record as the PR's
run only when it carries this request's id and says exactly what was asked: the job, the
commit, the PR, the requester. The id is the bot's own random token, kept in its state.
"""

from __future__ import annotations

import json
import secrets

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.record import RunRecord
from bot.doors.actions.context import ActionsError

MAX_REQUEST = 16_384
"""workflow_dispatch inputs are small; a request is a few hundred bytes, the prompt aside."""


class DispatchRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    job: str = Field(pattern=r"^\.agentplane/jobs/[A-Za-z0-9._/-]+\.ya?ml$", max_length=300)
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    number: int = Field(gt=0)
    requester: str = Field(min_length=1, max_length=300)
    requester_name: str = Field(default="", max_length=300)
    prompt: str | None = Field(default=None, max_length=8_000)


def new_request(
    job: str, commit: str, number: int, requester: str, name: str, prompt: str | None
) -> DispatchRequest:
    return DispatchRequest(
        id=secrets.token_hex(16),
        job=job,
        commit=commit,
        number=number,
        requester=requester,
        requester_name=name,
        prompt=prompt,
    )


def parse_request(text: str) -> DispatchRequest:
    """The `request` input, or ActionsError saying what is wrong with it."""
    if len(text) > MAX_REQUEST:
        raise ActionsError(f"the request input is {len(text)} characters, over {MAX_REQUEST}")
    try:
        return DispatchRequest.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ActionsError(f"the request input is not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise ActionsError(
            f"the request input is not a dispatch request: {where}: {first['msg']}"
        ) from None


def answers(rec: RunRecord, req: DispatchRequest) -> str | None:
    """None if rec is the run req asked for; else why not."""
    ref = rec.door_ref
    if ref is None or ref.dispatch != req.id:
        return "it carries another dispatch id"
    wanted = {
        "job": (rec.job_path, req.job),
        "commit": (rec.commit, req.commit),
        "pull request": (ref.number, req.number),
        "requester": (rec.requester, req.requester),
        "door": (rec.door, "pull_request"),
    }
    for what, (got, asked) in wanted.items():
        if got != asked:
            return f"its {what} is {got!r}, the dispatch asked for {asked!r}"
    return None
