"""plan(request, policy, config) -> Plan: a pure decision, every part with its rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.approvers import Requirement
from bot.canonical import digest_of
from bot.classify import classify
from bot.globs import covers, domain_covers
from bot.job import Budget
from bot.policy import JobTypePolicy, Policy, RepoConfig
from bot.request import RunRequest

CONFIG_RULE = ".agentplane/config.yaml"
LOW_CONFIDENCE = 0.5
# Actions a capability can perform even if the job does not list them: policy gates them anyway.
IMPLIED_ACTIONS = {"filesystem": "write", "shell": "write"}


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Decision(Frozen):
    kind: str
    subject: str
    granted: bool
    rule: str
    reason: str


class GatePlan(Frozen):
    action: str
    approvers: Requirement
    rule: str
    paths: list[str] = []


class ModelRoute(Frozen):
    model_class: str
    params: dict[str, Any]
    rule: str
    reason: str


class Plan(Frozen):
    job_name: str
    job_digest: str
    job_type: str
    job_type_reason: str
    prompt: str | None
    requester: str
    door: str
    commit: str
    allowed: Decision
    decisions: list[Decision]
    gates: list[GatePlan]
    budget: Budget
    budget_rule: str
    model: ModelRoute | None
    clarification: str | None
    backend: str | None = None
    """The sandbox backend the job type's policy requires; None: the host's default."""

    def granted(self, kind: str) -> list[str]:
        return [d.subject for d in self.decisions if d.kind == kind and d.granted]

    @property
    def denied(self) -> list[Decision]:
        return [d for d in self.decisions if not d.granted]

    @property
    def runnable(self) -> bool:
        return self.allowed.granted and self.clarification is None and self.model is not None

    def digest(self) -> str:
        return digest_of(self.model_dump(mode="json"))


def _narrow(
    kind: str,
    requested: list[str],
    allowed: list[str],
    allowed_rule: str,
    config_allowed: list[str] | None,
    covered: Callable[[str, str], bool],
) -> list[Decision]:
    out = []
    for item in requested:
        if not any(covered(a, item) for a in allowed):
            out.append(
                Decision(
                    kind=kind,
                    subject=item,
                    granted=False,
                    rule=allowed_rule,
                    reason=f"policy does not allow {kind} {item!r}",
                )
            )
        elif config_allowed is not None and not any(covered(a, item) for a in config_allowed):
            out.append(
                Decision(
                    kind=kind,
                    subject=item,
                    granted=False,
                    rule=CONFIG_RULE,
                    reason=f"repo config narrows {kind} and leaves out {item!r}",
                )
            )
        else:
            out.append(
                Decision(
                    kind=kind,
                    subject=item,
                    granted=True,
                    rule=allowed_rule,
                    reason="allowed by policy",
                )
            )
    return out


def _eq(a: str, b: str) -> bool:
    return a == b


def _scope_decisions(
    req: RunRequest, jt: JobTypePolicy, rule: Callable[[str], str], config: RepoConfig | None
) -> list[Decision]:
    job, cs = req.job, (config.scope if config else None)
    fs, net = job.scope.filesystem, job.scope.network
    sql = [job.scope.sql.connection] if job.scope.sql.connection else []
    policy_sql = [jt.scope.sql.connection] if jt.scope.sql.connection else []
    cfg_sql = ([cs.sql.connection] if cs.sql.connection else []) if cs else None
    return [
        *_narrow(
            "tool",
            list(job.tools),
            list(jt.tools),
            rule("tools"),
            list(config.tools) if config and config.tools is not None else None,
            _eq,
        ),
        *_narrow(
            "read",
            fs.read,
            jt.scope.filesystem.read,
            rule("scope.filesystem.read"),
            cs.filesystem.read if cs else None,
            covers,
        ),
        *_narrow(
            "write",
            fs.write,
            jt.scope.filesystem.write,
            rule("scope.filesystem.write"),
            cs.filesystem.write if cs else None,
            covers,
        ),
        *_narrow(
            "network",
            net.allow,
            jt.scope.network.allow,
            rule("scope.network.allow"),
            cs.network.allow if cs else None,
            domain_covers,
        ),
        *_narrow(
            "browser_domain",
            job.scope.browser.domains,
            jt.scope.browser.domains,
            rule("scope.browser.domains"),
            cs.browser.domains if cs else None,
            domain_covers,
        ),
        *_narrow("sql_connection", sql, policy_sql, rule("scope.sql.connection"), cfg_sql, _eq),
        *_narrow("credential", job.credentials, jt.credentials, rule("credentials"), None, _eq),
    ]


def _gates(
    req: RunRequest, policy: Policy, config: RepoConfig | None, tools: list[str], job_type: str
) -> list[GatePlan]:
    actions: list[str] = list(req.job.approval_required_for)
    actions += config.approval_required_for if config else []
    actions += [IMPLIED_ACTIONS[t] for t in tools if t in IMPLIED_ACTIONS]
    gates: list[GatePlan] = []
    for action in dict.fromkeys(actions):
        gate = next(
            (
                g
                for g in policy.gates
                if action in g.actions and (not g.job_types or job_type in g.job_types)
            ),
            None,
        )
        if gate is not None:
            gates.append(
                GatePlan(
                    action=action,
                    approvers=gate.approvers,
                    rule=policy.rule(f"gates.{gate.id}"),
                    paths=gate.paths,
                )
            )
        elif policy.default_approvers is not None:
            gates.append(
                GatePlan(
                    action=action,
                    approvers=policy.default_approvers,
                    rule=policy.rule("default_approvers"),
                )
            )
        else:
            # No gate names this action and no default: nobody can approve (fails closed).
            gates.append(
                GatePlan(action=action, approvers=Requirement(any_of=[]), rule="policy#gates")
            )
    return gates


def _budget(req: RunRequest, policy: Policy, config: RepoConfig | None) -> Budget:
    values: dict[str, Any] = {}
    for field in ("usd", "minutes", "tool_calls"):
        candidates = [
            getattr(req.job.budget, field) or getattr(policy.budgets.default, field),
            getattr(policy.budgets.max, field),
            getattr(config.budget, field) if config else None,
        ]
        present = [c for c in candidates if c is not None]
        values[field] = min(present) if present else None
    return Budget(**values)


def _route(req: RunRequest, policy: Policy, job_type: str) -> ModelRoute | None:
    models = policy.models
    if req.job.model != "auto":
        if req.job.model not in models.classes:
            return None
        return ModelRoute(
            model_class=req.job.model,
            params=models.classes[req.job.model],
            rule=policy.rule(f"models.classes.{req.job.model}"),
            reason="the job names this model class",
        )
    for route in models.routes:
        if not route.job_types or job_type in route.job_types:
            return ModelRoute(
                model_class=route.use,
                params=models.classes[route.use],
                rule=policy.rule(f"models.routes.{route.id}"),
                reason=f"route {route.id} matches job type {job_type}",
            )
    if models.default is not None:
        return ModelRoute(
            model_class=models.default,
            params=models.classes[models.default],
            rule=policy.rule("models.default"),
            reason="no route matched; default",
        )
    return None


def plan(req: RunRequest, policy: Policy, config: RepoConfig | None = None) -> Plan:
    prompt = req.prompt or req.job.prompt
    clarification = (
        None
        if prompt
        else ("the run has no prompt: give one in the job file, the PR/issue, or with --prompt")
    )
    job_type: str
    if req.job.job_type is not None:
        job_type, type_reason = req.job.job_type, "declared in the job file"
    else:
        c = classify(prompt or "")
        job_type, type_reason = c.job_type, f"classified ({c.confidence:.2f}): {c.reason}"
        if prompt and c.confidence < LOW_CONFIDENCE and clarification is None:
            clarification = f"the job type is unclear ({c.reason}); set job_type in the job file"
    jt = policy.job_types.get(job_type)
    if jt is None:
        allowed = Decision(
            kind="run",
            subject=job_type,
            granted=False,
            rule=policy.rule("job_types"),
            reason=f"policy defines no job type {job_type!r}",
        )
        decisions: list[Decision] = []
    else:
        ok = any(policy.matches(p, req.requester) for p in jt.run_by)
        allowed = Decision(
            kind="run",
            subject=job_type,
            granted=ok,
            rule=policy.rule(f"job_types.{job_type}.run_by"),
            reason=("requester is in " if ok else "requester is not in ") + ", ".join(jt.run_by),
        )
        decisions = _scope_decisions(
            req, jt, lambda k: policy.rule(f"job_types.{job_type}.{k}"), config
        )
    tools = [d.subject for d in decisions if d.kind == "tool" and d.granted]
    route = _route(req, policy, job_type)
    return Plan(
        job_name=req.job.name,
        job_digest=req.job.digest(),
        job_type=job_type,
        job_type_reason=type_reason,
        prompt=prompt,
        requester=req.requester,
        door=req.door,
        commit=req.commit,
        allowed=allowed,
        decisions=decisions,
        gates=_gates(req, policy, config, tools, job_type),
        budget=_budget(req, policy, config),
        budget_rule=policy.rule("budgets"),
        model=route,
        backend=jt.backend if jt is not None else None,
        clarification=clarification
        if route is not None
        else (clarification or f"model class {req.job.model!r} is not defined in policy"),
    )
