"""plan(request, policy, config) -> Plan: a pure decision, every part with its rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.core.approvers import Requirement, never_met
from bot.core.canonical import digest_of
from bot.core.contracts import Clause, UnknownContract, resolve, vocabulary
from bot.core.globs import covers, domain_covers
from bot.core.identity import Directory
from bot.core.job import Budget
from bot.core.job_type import classify
from bot.core.policy import DEFAULT_SCRATCH, JobTypePolicy, Policy, RepoConfig
from bot.core.request import RunRequest
from bot.core.routing import FallbackLink, route, why_no_route

CONFIG_RULE = ".agentplane/config.yaml"


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
    never_met: str = ""
    """Why no approvals can ever meet this gate (too few people in its principals), or ""."""


class ModelRoute(Frozen):
    model_class: str
    """The model group (a `model_name` of policy's model_list)."""
    params: dict[str, Any]
    """The group's first deployment, shown in the plan."""
    fallbacks: list[str] = []
    """The fallback groups this job may take (cleared for its data), in order."""
    chain: list[FallbackLink] = []
    """Every fallback link of the group, taken or not, each with its rule."""
    cost_note: str = ""
    """Why the group's cost cannot be known before a call, or ""."""
    rule: str
    reason: str


class SetupPlan(Frozen):
    """The setup phase as planned: the repository's commands, and what policy lets them
    reach (registries only) and take."""

    commands: list[str]
    inputs: list[str]
    """Globs of the files setup reads: with the commands, what keys the environment."""
    registries: list[str]
    """The registries granted (each also a `registry` decision with its rule)."""
    private_networks: tuple[str, ...] = ()
    minutes: float
    max_env_bytes: int
    cache_bytes: int
    rule: str
    """Where policy allows setup (`policies/x.yaml#setup`)."""
    config_rule: str = f"{CONFIG_RULE}#setup"


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
    budget_capped: tuple[str, ...] = ()
    """The job's own limits that policy's max or the repo config lowered, each with its rule."""
    model: ModelRoute | None
    clarification: str | None
    backend: str | None = None
    """The sandbox backend the job type's policy requires; None: the host's default."""
    private_networks: tuple[str, ...] = ()
    """Non-public networks the job type's egress may reach (policy only)."""
    private_networks_rule: str = ""
    tools_rule: str = ""
    """Where the job type's tools are granted: the rule for a tool the job never asked for."""
    verify: list[str] = []
    """Commands the control plane runs on the proposal (the job's `verify`)."""
    approve_failed_verification: bool = False
    approve_failed_verification_rule: str = ""
    data_sensitivity: str = "internal"
    """The job's data sensitivity: which model groups and fallbacks may receive it."""
    contract: list[Clause] = []
    """What the run must leave for review (the job's artifact_contract, resolved)."""
    setup: SetupPlan | None = None
    """The setup phase the run starts with; None: none (none declared, or not allowed)."""
    scratch: list[str] = []
    """Workspace directories every phase may write and no proposal carries (test caches)."""

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
    req: RunRequest,
    policy: Policy,
    config: RepoConfig | None,
    tools: list[str],
    job_type: str,
    implied: Mapping[str, tuple[str, ...]],
) -> list[GatePlan]:
    actions: list[str] = list(req.job.approval_required_for)
    actions += config.approval_required_for if config else []
    actions += [a for t in tools for a in implied.get(t, ())]
    gates: list[GatePlan] = []
    for action in dict.fromkeys(actions):
        matching = [
            g
            for g in policy.gates
            if action in g.actions and (not g.job_types or job_type in g.job_types)
        ]
        gates += [
            GatePlan(
                action=action,
                approvers=g.approvers,
                rule=policy.rule(f"gates.{g.id}"),
                paths=g.paths,
            )
            for g in matching
        ]
        if all(g.paths for g in matching):
            # Nothing covers every path (or nothing names the action at all): the default
            # approvers gate the rest; with no default, nobody can approve (fails closed).
            if policy.default_approvers is not None:
                gates.append(
                    GatePlan(
                        action=action,
                        approvers=policy.default_approvers,
                        rule=policy.rule("default_approvers"),
                    )
                )
            else:
                gates.append(
                    GatePlan(action=action, approvers=Requirement(any_of=[]), rule="policy#gates")
                )
    return gates


def _setup(
    policy: Policy, config: RepoConfig | None, job_type: str
) -> tuple[SetupPlan | None, list[Decision]]:
    """The setup phase the repo config declares, as policy narrows it: its registries each
    a decision; setup itself a denied decision when policy does not allow it here."""
    declared = config.setup if config else None
    if declared is None:
        return None, []
    sp = policy.setup
    refusal = ""
    if sp is None:
        refusal = "policy has no setup section: no repository may run setup commands"
    elif job_type not in sp.job_types:
        refusal = f"policy's setup.job_types does not include {job_type!r}"
    elif len(declared.commands) > sp.max_commands:
        refusal = f"{len(declared.commands)} setup commands, policy allows {sp.max_commands}"
    if sp is None or refusal:
        rule = policy.rule("setup") if sp is not None else "policy#setup"
        denied = Decision(kind="setup", subject="setup", granted=False, rule=rule, reason=refusal)
        return None, [denied]
    rule = policy.rule("setup.registries")
    requested = declared.registries if declared.registries is not None else sp.registries
    decisions = _narrow("registry", list(requested), list(sp.registries), rule, None, domain_covers)
    granted = [d.subject for d in decisions if d.granted]
    return SetupPlan(
        commands=list(declared.commands),
        inputs=list(declared.inputs),
        registries=granted,
        private_networks=tuple(sp.private_networks),
        minutes=sp.minutes,
        max_env_bytes=sp.max_env_bytes,
        cache_bytes=sp.cache_bytes,
        rule=policy.rule("setup"),
    ), [
        Decision(
            kind="setup",
            subject="setup",
            granted=True,
            rule=policy.rule("setup"),
            reason=f"{len(declared.commands)} command(s) from {CONFIG_RULE}",
        ),
        *decisions,
    ]


def _budget(
    req: RunRequest, policy: Policy, config: RepoConfig | None
) -> tuple[Budget, tuple[str, ...]]:
    """The run's budget, and a note for each of the job's own limits that policy's max
    or the repo config lowered (a cap is never silent)."""
    values: dict[str, Any] = {}
    capped: list[str] = []
    for field in ("usd", "minutes", "tool_calls", "tokens"):
        asked = getattr(req.job.budget, field)
        limits = [
            (getattr(policy.budgets.max, field), f"{policy.rule('budgets')}.max"),
            (getattr(config.budget, field) if config else None, ".agentplane/config.yaml#budget"),
        ]
        candidates = [asked or getattr(policy.budgets.default, field)]
        candidates += [limit for limit, _ in limits]
        present = [c for c in candidates if c is not None]
        values[field] = min(present) if present else None
        if asked is not None and values[field] is not None and values[field] < asked:
            rule = next(r for limit, r in limits if limit == values[field])
            capped.append(f"{field} {asked} capped to {values[field]} [{rule}]")
    return Budget(**values), tuple(capped)


def _route(
    req: RunRequest, policy: Policy, job_type: str, mutating: bool, budget: Budget
) -> tuple[ModelRoute | None, str]:
    """The model route, or None and why there is none (what the plan asks instead)."""
    models = policy.models
    groups = models.groups()
    sensitivity = req.job.data_sensitivity
    if req.job.model != "auto":
        if req.job.model not in groups:
            return None, f"model group {req.job.model!r} is not defined in policy"
        if (refusal := models.refusal(req.job.model, sensitivity, budget.usd)) is not None:
            return None, f"model group {req.job.model!r}: {refusal[1]} ({policy.rule(refusal[0])})"
        chosen = (req.job.model, "models", "the job names this model group")
    else:
        found = route(models, job_type, sensitivity, mutating, req.job.latency, budget.usd)
        if found is None:
            why = why_no_route(models, job_type, sensitivity, mutating, req.job.latency, budget.usd)
            return None, f"no model may serve this job: {why}"
        chosen = found
    group, key, reason = chosen
    chain = models.fallback_chain(group, sensitivity, budget.usd)
    return ModelRoute(
        model_class=group,
        params=groups[group][0],
        fallbacks=[link.group for link in chain if link.used],
        chain=[link.model_copy(update={"rule": policy.rule(link.rule)}) for link in chain],
        cost_note=models.cost_unknown(group) or "",
        rule=policy.rule(key),
        reason=reason,
    ), ""


def _clarification(
    req: RunRequest, policy: Policy, prompt: str | None, confidence: float | None, mutating: bool
) -> str | None:
    """Ask before running rather than let the agent assume (policy's `clarify` rules)."""
    rules = policy.clarify
    if not prompt:
        return "the run has no prompt: give one in the job file, the PR/issue, or with --prompt"
    if confidence is not None and confidence < rules.min_confidence:
        return f"the job type is unclear (confidence {confidence:.2f}); set job_type"
    lowered = prompt.lower()
    if (
        mutating
        and rules.mutating_needs_acceptance
        and not any(m in lowered for m in rules.acceptance_markers)
    ):
        return (
            "the job can change things but its prompt says nothing about what done looks "
            "like: add acceptance criteria (e.g. 'Done when the tests pass')"
        )
    return None


def plan(
    req: RunRequest,
    policy: Policy,
    config: RepoConfig | None = None,
    directory: Directory | None = None,
    *,
    implied: Mapping[str, tuple[str, ...]],
) -> Plan:
    """directory: who is who (a door that knows GitHub resolves policy's logins with it).
    implied: capability -> the actions its tools perform whatever the job lists (the tool
    families say; bot.families.interface.implied_actions): their gates are planned too.
    Required, so no caller can forget it and plan a write without its gate."""
    prompt = req.prompt or req.job.prompt
    confidence: float | None = None
    job_type: str
    if req.job.job_type is not None:
        job_type, type_reason = req.job.job_type, "declared in the job file"
    else:
        c = classify(prompt or "")
        job_type, type_reason = c.job_type, f"classified ({c.confidence:.2f}): {c.reason}"
        confidence = c.confidence if prompt else None
    d = directory or policy.directory()
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
        ok = any(policy.matches(p, req.requester, d) for p in jt.run_by)
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
    try:
        contract = resolve(req.job.artifact_contract, vocabulary(policy.artifact_contracts))
    except UnknownContract as exc:
        contract = []
        if allowed.granted:
            allowed = Decision(
                kind="run",
                subject=job_type,
                granted=False,
                rule=f"{req.job_path}#artifact_contract",
                reason=str(exc),
            )
    tools = [d.subject for d in decisions if d.kind == "tool" and d.granted]
    gates = [
        g.model_copy(
            update={
                "never_met": never_met(
                    g.approvers, lambda p: policy.people_in(p, d), d.person(req.requester)
                )
                or ""
            }
        )
        for g in _gates(req, policy, config, tools, job_type, implied)
    ]
    setup, setup_decisions = _setup(policy, config, job_type) if jt is not None else (None, [])
    decisions += setup_decisions
    budget, budget_capped = _budget(req, policy, config)
    mutating = bool(gates)
    chosen, no_route = _route(req, policy, job_type, mutating, budget)
    clarification = _clarification(req, policy, prompt, confidence, mutating)
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
        gates=gates,
        budget=budget,
        budget_rule=policy.rule("budgets"),
        budget_capped=budget_capped,
        model=chosen,
        backend=jt.backend if jt is not None else None,
        private_networks=tuple(jt.private_networks) if jt is not None else (),
        private_networks_rule=policy.rule(f"job_types.{job_type}.private_networks"),
        tools_rule=policy.rule(f"job_types.{job_type}.tools"),
        contract=contract,
        data_sensitivity=req.job.data_sensitivity,
        verify=list(req.job.verify),
        setup=setup,
        scratch=list(config.scratch if config else DEFAULT_SCRATCH),
        approve_failed_verification=jt.approve_failed_verification if jt is not None else False,
        approve_failed_verification_rule=policy.rule(
            f"job_types.{job_type}.approve_failed_verification"
        ),
        clarification=clarification if chosen is not None else (clarification or no_route),
    )
