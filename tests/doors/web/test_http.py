"""The pages and API over a real audit branch, at the HTTP level: Host checking, CSP,
autoescape of hostile prompts, CSRF, downloads, the index's incremental updates."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from bot.doors.web.app import Origins, build
from bot.doors.web.index import RunFilter, RunIndex
from bot.doors.web.security import CSRF_COOKIE, allowed_hosts
from bot.doors.web.site import Site
from bot.doors.web.viewer import build_viewer
from tests.doors.web.conftest import HOSTILE, TEST_ORIGINS, World


def test_host_header_must_be_the_loopback_address_served(site: Site) -> None:
    app = build(site, Origins(app="http://127.0.0.1:8765", app_hosts=allowed_hosts(8765)))
    ok = TestClient(app, base_url="http://127.0.0.1:8765")
    assert ok.get("/runs").status_code == 200
    assert ok.get("/runs", headers={"Host": "localhost:8765"}).status_code == 200
    for host in ("evil.example:8765", "127.0.0.1:9999", "127.0.0.1", "attacker.127.0.0.1.nip.io"):
        response = ok.get("/api/runs", headers={"Host": host})
        assert response.status_code == 421, host
        assert "run_id" not in response.text


def test_every_page_has_a_strict_csp_and_no_script(client: TestClient, world: World) -> None:
    for path in ("/runs", f"/runs/{world.runs['applied']}", "/jobs", "/jobs/fix-failing-test"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in response.text.lower()


def test_a_hostile_prompt_is_escaped(client: TestClient, world: World) -> None:
    page = client.get(f"/runs/{world.runs['denied']}").text
    assert "&lt;script&gt;alert(" in page
    assert "<script>" not in page and "<img src=x" not in page
    api = client.get(f"/api/runs/{world.runs['denied']}").json()
    assert api["record"]["prompt"] == HOSTILE  # the data itself is unchanged
    assert api["record"]["state"] == "denied"


def test_run_page_shows_the_record(client: TestClient, world: World) -> None:
    page = client.get(f"/runs/{world.runs['applied']}").text
    assert 'id="verified">verified<' in page
    assert "policies/default.yaml#job_types.code.scope.filesystem.write" in page  # denied write
    assert '<tr class="del">' in page and '<tr class="add">' in page
    assert "return a + b" in page
    assert "Maya Maintainer" in page and "approve" in page
    detail = client.get(f"/api/runs/{world.runs['applied']}").json()
    assert detail["verification"]["verified"] is True
    assert detail["verification"]["entry_digest"].startswith("sha256:")
    assert detail["record"]["approvals"][0]["proposal_digest"].startswith("sha256:")


def test_unknown_run_and_artifact_are_404(client: TestClient, world: World) -> None:
    assert client.get("/runs/no-such-run").status_code == 404
    assert client.get("/api/runs/no-such-run").status_code == 404
    assert client.get(f"/runs/{world.runs['applied']}/artifacts/nope.txt").status_code == 404


def test_artifacts_are_downloads_never_inline(client: TestClient, world: World) -> None:
    response = client.get(f"/runs/{world.runs['applied']}/artifacts/proposal.diff")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="proposal.diff"'
    assert response.headers["content-type"] == "application/octet-stream"
    assert "sandbox" in response.headers["content-security-policy"]
    assert b"+    return a + b" in response.content
    # Not PNG or JPEG bytes: never shown as a picture, whatever it is called.
    assert client.get(f"/runs/{world.runs['applied']}/pictures/proposal.diff").status_code == 415


def test_filters_in_the_api_and_openapi(client: TestClient, world: World) -> None:
    everything = client.get("/api/runs").json()
    assert everything["total"] == len(world.runs)
    starts = [r["started"] for r in everything["runs"]]
    assert starts == sorted(starts, reverse=True)
    denied = client.get("/api/runs", params={"state": "denied"}).json()["runs"]
    assert [r["run_id"] for r in denied] == [world.runs["denied"]]
    by_approver = client.get("/api/runs", params={"approver": "maya@example.com"}).json()
    assert [r["run_id"] for r in by_approver["runs"]] == [world.runs["applied"]]
    by_tool = client.get("/api/runs", params={"tool": "shell"}).json()["runs"]
    assert [r["run_id"] for r in by_tool] == [world.runs["applied"]]
    assert client.get("/api/runs", params={"until": "2000-01-01"}).json()["total"] == 0
    assert client.get("/api/runs", params={"requester": "nobody"}).json()["runs"] == []
    schema = client.get("/openapi.json").json()
    assert {"/api/runs", "/api/runs/{run_id}", "/api/jobs"} <= set(schema["paths"])
    assert "RunRow" in schema["components"]["schemas"]


def _token(client: TestClient) -> str:
    page = client.get("/jobs/fix-failing-test").text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def test_the_web_door_refuses_a_post_without_a_matching_token(
    client: TestClient, site: Site
) -> None:
    before = site.index.query(RunFilter()).total
    token = _token(client)
    url = "/jobs/fix-failing-test/runs"
    missing = client.post(url, data={"prompt": ""})
    assert missing.status_code == 403 and "missing CSRF token" in missing.text
    wrong = client.post(url, data={"csrf": token[::-1], "prompt": ""})
    assert wrong.status_code == 403 and "does not match" in wrong.text
    cross = client.post(url, data={"csrf": token}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.text
    site_ = client.post(url, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert site_.status_code == 403
    client.cookies.delete(CSRF_COOKIE)
    no_cookie = client.post(url, data={"csrf": token})
    assert no_cookie.status_code == 403
    json_body = client.post(url, json={"csrf": token})
    assert json_body.status_code in (403, 415)
    assert client.post("/jobs/no-such-job/runs", data={"csrf": "x" * 40}).status_code == 403
    site.refresh()
    assert site.index.query(RunFilter()).total == before  # nothing started


def test_viewer_serves_only_traces_a_run_names(site: Site, world: World) -> None:
    viewer = TestClient(
        build_viewer(site, "http://testserver", frozenset({"testserver"})),
        base_url="http://testserver",
    )
    rec = site.record(world.runs["applied"])
    diff = rec.artifact("proposal.diff")
    assert diff is not None
    assert viewer.get(f"/traces/{diff.sha256}.zip").status_code == 404  # not a trace
    assert viewer.get("/traces/nothex.zip").status_code == 404
    assert viewer.get("/traces/" + "0" * 64 + ".zip").status_code == 404
    index = viewer.get("/index.html")
    assert index.status_code == 200
    csp = index.headers["content-security-policy"]
    assert "frame-ancestors http://testserver" in csp and "script-src 'self'" in csp
    assert viewer.get("/index.html", headers={"Host": "evil.example"}).status_code == 421


def test_index_updates_incrementally_and_rebuilds_after_a_rewrite(
    world: World, tmp_path_factory: object
) -> None:
    log = world.engine.audit
    world.engine.policy()
    index = RunIndex(log.key_dir / "test-index.sqlite")
    try:
        first = index.update(log)
        assert first == len(list(log.entries())) and index.last_seq() == first - 1
        assert index.update(log) == 0  # nothing new: nothing read
        index._set("last_digest", "sha256:" + "0" * 64)  # as if the branch was rewritten
        index._db.commit()
        assert index.update(log) == first  # rebuilt from seq 0
        assert index.query(RunFilter()).total == len(world.runs)
    finally:
        index.close()
        (log.key_dir / "test-index.sqlite").unlink()


def test_ui_approvals_go_through_the_engines_gates_as_door_web(site: Site, world: World) -> None:
    if "browser" not in world.runs:
        pytest.skip("no run awaits approval without Chromium")
    site.decider = site.decide_here
    client = TestClient(build(site, TEST_ORIGINS))
    path = f"/runs/{world.runs['browser']}"
    page = client.get(path).text
    view = re.search(r'name="view" value="([^"]+)"', page)
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert view is not None and token is not None
    r = client.post(
        f"{path}/decision",
        data={"csrf": token[1], "view": view[1], "decision": "approve"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == path
    (approval,) = site.record(world.runs["browser"]).approvals
    # The clone's own user asked for the run: recorded, from door web, and not counted.
    assert approval.door == "web" and not approval.counted
    assert "authors cannot approve" in approval.reason
