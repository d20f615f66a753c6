"""Jobs and their plans that tests and benches of several families build on."""

from __future__ import annotations

from bot.core.job import parse_job
from bot.core.plan import Plan
from bot.core.policy import merge_policy
from bot.core.request import RunRequest
from tests.support.planning import plan
from tests.support.postgres import PROJECT

BROWSER_POLICY = """
groups: {platform: [maya@example.com]}
roles: {maintainer: [group:platform], developer: ["*"]}
job_types:
  browser:
    run_by: [role:developer]
    tools: [browser]
    scope:
      browser: {domains: ["127.0.0.1", "admin.internal.example.com"]}
    credentials: [admin-console]
    private_networks: [127.0.0.0/8]  # the console stand-in listens on loopback
gates:
  - {id: browser-submit, actions: [submit], approvers: {any_of: [role:maintainer]}}
  - {id: irreversible, actions: [delete, purchase], approvers: {count: 2, of: [role:maintainer]}}
models:
  classes: {recorded: {model: scripted/admin-edit, api_base: .agentplane/scripts}}
  default: recorded
"""
BROWSER_JOB = """
job_type: browser
prompt: Change bob's email to bob@new.example.com in the admin console.
tools: [browser]
scope:
  browser:
    domains: ["127.0.0.1"]
    gated:
      - {role: button, name: Delete, action: delete}
credentials: [admin-console]
approval_required_for: [submit, delete]
"""


def browser_plan(job_text: str = BROWSER_JOB) -> Plan:
    job = parse_job(".agentplane/jobs/admin-edit.yaml", job_text)
    req = RunRequest(
        job=job,
        job_path=".agentplane/jobs/admin-edit.yaml",
        requester="dana@example.com",
        repo="demo",
        commit="0" * 40,
    )
    return plan(req, merge_policy([("policies/default.yaml", BROWSER_POLICY)]))


SQL_JOB = """
job_type: sql
prompt: why is the database slow?
tools: [sql]
scope: {sql: {connection: replica}}
"""


def sql_plan(job: str = SQL_JOB) -> Plan:
    policy = merge_policy(
        [("policies/default.yaml", (PROJECT / "policies/default.yaml").read_text())]
    )
    req = RunRequest(
        job=parse_job("j.yaml", job), job_path="j.yaml", requester="dana@example.com",
        repo="r", commit="0" * 40,
    )  # fmt: skip
    return plan(req, policy)
