"""serve's web door and trace viewer at the HTTP level: a start from a job's page is a
queued delivery the worker runs as door `web` (GitHub's write permission first, then
policy), refused without write or a good CSRF token; the viewer answers on its own host,
only for a signed per-trace token of someone who can read that repository."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from bot.doors.github.queue import SqliteQueue
from bot.doors.github.sansio import Delivery
from bot.doors.github.settings import Settings
from bot.doors.github.web_start import WEB_START, start_payload
from bot.doors.web.hub import SESSION_COOKIE
from bot.doors.web.security import CSRF_COOKIE
from bot.doors.web.site import User
from tests.doors.web.serve_world import OTHER, WEB, Serve

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FORM = re.compile(r'name="form" value="([^"]+)"')
JOB_PAGE = f"/repos/{WEB}/jobs/fix-failing-test"
PROMPT = "Fix add() in src/ <b>now</b>. Done when the tests pass."


def signed_in(serve: Serve, login: str) -> TestClient:
    client = serve.client()
    done = serve.sign_in(client, login)
    assert done.status_code == 303, done.text
    return client


def _form(client: TestClient, prompt: str = "") -> dict[str, str]:
    page = client.get(JOB_PAGE)
    assert page.status_code == 200, page.text
    csrf, form = CSRF.search(page.text), FORM.search(page.text)
    assert csrf is not None and form is not None, page.text
    return {"csrf": csrf[1], "form": form[1], "prompt": prompt}


def _start(client: TestClient, form: dict[str, str], origin: str = "") -> Response:
    return client.post(
        f"{JOB_PAGE}/runs",
        data=form,
        headers={"Origin": origin or str(client.base_url).rstrip("/")},
        follow_redirects=False,
    )


def _token(url: str) -> tuple[str, str]:
    """(body, signature) of the token in a viewer URL."""
    body, mac = url.split("/t/")[1].split("/")[0].split(".")
    return body, mac


@pytest.fixture
def web(serve: Serve) -> Serve:
    serve.sync(WEB)  # the bot's clone has the default branch's jobs
    assert serve.queue.lease() is None
    return serve


def test_a_writer_starts_a_job_from_its_page_and_the_worker_runs_it_as_door_web(
    web: Serve,
) -> None:
    maya = signed_in(web, "maya")
    assert "fix-failing-test" in maya.get(f"/repos/{WEB}/jobs").text
    form = _form(maya, PROMPT)
    assert "Start run as maya" in maya.get(JOB_PAGE).text
    r = _start(maya, form)
    assert r.status_code == 200 and "queue" in r.text, r.text
    assert _start(maya, form).status_code == 200  # the same form again: one delivery
    assert web.queue.counts().get("queued") == 1
    # On disk, not in this process: a restarted bot's queue has it.
    restarted = SqliteQueue(web.door.settings.data_dir / "queue.db")
    assert restarted.counts().get("queued") == 1

    (done,) = web.work()
    assert done.startswith("web start by maya:") and "awaiting_approval on #" in done, done
    mine = {"door": "web", "job": "fix-failing-test"}
    (row,) = maya.get(f"/repos/{WEB}/api/runs", params=mine).json()["runs"]
    rec = maya.get(f"/repos/{WEB}/api/runs/{row['run_id']}").json()["record"]
    assert rec["door"] == "web" and rec["requester"] == f"github:{web.github.user_id('maya')}"
    assert rec["prompt"] == PROMPT
    assert row["run_id"] in maya.get(f"/repos/{WEB}/runs", params=mine).text
    # Approval stays where policy says: the job's proposal PR carries the run, and the
    # run page offers the web decision (policy's default lets door web approve).
    number = int(done.rsplit("#", 1)[1])
    evidence = [c.body for c in web.github.comments(WEB, number) if row["run_id"] in c.body]
    assert evidence, "the proposal PR shows no evidence of the run"
    assert "Approve as maya" in maya.get(f"/repos/{WEB}/runs/{row['run_id']}").text


def test_a_start_delivered_again_after_a_crash_carries_on_with_its_run(web: Serve) -> None:
    """A worker killed after the run was recorded, before the queue heard the delivery was
    done, is given the start again: the same run goes on, no second run is started."""
    maya = web.github.user_id("maya")
    inst = web.github.installations.get("octo")
    job = ".agentplane/jobs/fix-failing-test.yaml"
    payload = start_payload(WEB, inst, job, PROMPT, maya, "maya", "web-start-once")
    answers = []
    for attempt in ("first", "again"):  # the queue sees two deliveries; the start is one
        web.queue.put(Delivery(WEB_START, f"redelivered-{attempt}", "web", payload))
        (done,) = web.work()
        answers.append(done)
    first, again = (a.split(":", 1)[1].split()[0] for a in answers)
    assert first == again, answers
    reader = signed_in(web, "maya")
    rows = reader.get(f"/repos/{WEB}/api/runs", params={"door": "web"}).json()["runs"]
    records = [reader.get(f"/repos/{WEB}/api/runs/{r['run_id']}").json()["record"] for r in rows]
    assert [r["run_id"] for r in records if r["door_ref"]["start"] == "web-start-once"] == [first]


def test_a_reader_without_write_cannot_start(web: Serve) -> None:
    ray = signed_in(web, "ray")
    page = ray.get(JOB_PAGE).text
    assert 'id="refused"' in page and "Start run as" not in page
    # Posted by hand with the CSRF cookie the page set: still no start.
    token = ray.cookies[CSRF_COOKIE]
    r = _start(ray, {"csrf": token, "form": "f" * 32, "prompt": ""})
    assert r.status_code == 403 and "write access" in r.text
    assert web.queue.lease() is None
    eve = signed_in(web, "eve")  # cannot even read it: no page, no form
    assert eve.get(JOB_PAGE).status_code == 403
    forged = _start(eve, {"csrf": "x" * 40, "form": "y" * 32}, "")
    assert forged.status_code == 403 and web.queue.lease() is None


def test_a_forged_or_absent_csrf_token_starts_nothing(web: Serve) -> None:
    maya = signed_in(web, "maya")
    form = _form(maya)
    assert _start(maya, {**form, "csrf": ""}).status_code == 403
    r = _start(maya, {**form, "csrf": "A" * 43})
    assert r.status_code == 403 and "does not match" in r.text
    r = _start(maya, form, origin="https://evil.example")
    assert r.status_code == 403 and "cross-origin" in r.text
    assert web.queue.lease() is None


def test_after_github_policy_decides_and_the_worker_asks_github_again(web: Serve) -> None:
    wes = signed_in(web, "wes")  # write on GitHub, not in policy
    assert _start(wes, _form(wes)).status_code == 200
    (done,) = web.work()
    assert done.startswith("web start by wes:") and done.endswith("denied"), done
    # Write taken away while the start waits in the queue: the worker refuses it.
    assert _start(wes, _form(wes)).status_code == 200
    web.github.set_permission(WEB, "wes", "read")
    try:
        (done,) = web.work()
    finally:
        web.github.set_permission(WEB, "wes", "write")
    assert done == f"refused: GitHub gives wes read, not write, on {WEB}", done


def test_the_viewer_answers_on_its_own_host_only_for_a_signed_token(web: Serve) -> None:
    assert web.viewer is not None and web.hub is not None
    maya = signed_in(web, "maya")
    viewer = TestClient(web.app, base_url=web.viewer)
    viewer.cookies.set(SESSION_COOKIE, maya.cookies[SESSION_COOKIE])
    # Nothing of the app answers there, whatever cookie comes along.
    for path in ("/repos", f"/repos/{WEB}/runs", "/login", "/webhook"):
        assert viewer.get(path, follow_redirects=False).status_code == 404, path
    shell = viewer.get("/index.html")
    assert shell.status_code == 200
    assert f"frame-ancestors {web.public}" in shell.headers["content-security-policy"]
    page = maya.get(f"/repos/{WEB}/runs")
    assert f"frame-src {web.viewer}" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]  # none at all

    link = web.hub.trace_link(WEB)
    assert link is not None
    sha = "0" * 64  # named by no run
    maya_id, eve_id = web.github.user_id("maya"), web.github.user_id("eve")
    r = viewer.get(link(User(f"github:{maya_id}", "maya"), sha).removeprefix(web.viewer))
    assert r.status_code == 404 and "no run of this repository" in r.text
    # eve cannot read octo/web: a token made out to her opens nothing there.
    r = viewer.get(link(User(f"github:{eve_id}", "eve"), sha).removeprefix(web.viewer))
    assert r.status_code == 404 and "cannot be shown" in r.text
    for token in ("", "x", "a.b", link(User(f"github:{maya_id}", "maya"), sha)[-60:]):
        r = viewer.get(f"/t/{token}/trace.zip")
        assert r.status_code == 404 and b"PK" not in r.content[:2], token
    # A token for one repository's trace is not one for another's.
    other = web.hub.trace_link(OTHER)
    assert other is not None
    maya_user = User(f"github:{maya_id}", "maya")
    body, mac = _token(link(maya_user, sha))
    _, other_mac = _token(other(maya_user, sha))
    assert mac != other_mac
    assert viewer.get(f"/t/{body}.{other_mac}/trace.zip").status_code == 404


def test_the_viewer_must_be_on_another_origin() -> None:
    for same in ("https://bot.example", "https://BOT.example/viewer"):
        with pytest.raises(ValueError, match="another origin"):
            Settings(public_url="https://bot.example", viewer_url=same)
    ok = Settings(public_url="https://bot.example", viewer_url="https://traces.bot.example")
    assert ok.viewer_url == "https://traces.bot.example"


def test_the_worker_refuses_a_start_that_names_no_job_file(web: Serve) -> None:
    """What the queue holds is checked again: a path outside the jobs directory, a job
    that is not there, someone without write."""
    maya = web.github.user_id("maya")
    inst = web.github.installations.get("octo")
    for job, who, expected in (
        ("../../policies/default.yaml", ("maya", maya), "is not a job file"),
        (".agentplane/jobs/../x.yaml", ("maya", maya), "is not a job file"),
        (".agentplane/jobs/nope.yaml", ("maya", maya), "refused:"),
        (".agentplane/jobs/fix-failing-test.yaml", ("eve", web.github.user_id("eve")), "not write"),
        (".agentplane/jobs/fix-failing-test.yaml", ("maya", maya + 999), "no longer the account"),
    ):
        payload = start_payload(WEB, inst, job, None, who[1], who[0], f"s-{time.time_ns()}")
        web.queue.put(Delivery(WEB_START, f"hostile-{time.time_ns()}", "web", payload))
        (done,) = web.work()
        assert done.startswith("refused:") and expected in done, (job, who, done)
