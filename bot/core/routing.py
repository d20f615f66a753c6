"""Model routing by risk, not fashion: model groups in litellm's `model_list` format, and
rules on task class, data sensitivity, mutation risk, budget and latency.

Routes choose; they do not grant. What a group may receive is its own declaration
(`cleared_for`: the data sensitivities it is cleared for), so neither a route nor a
fallback can send customer data to a group that was never cleared for it.

`route()` is pure and explainable: it returns the group and the rule that chose it,
with the conditions that matched. litellm's Router does retries and the fallbacks
`fallback_chain()` allows for the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.core.errors import AgentplaneError
from bot.core.job import JobType

Sensitivity = Literal["public", "internal", "customer", "restricted"]
Latency = Literal["interactive", "batch"]
SENSITIVITIES: tuple[Sensitivity, ...] = ("public", "internal", "customer", "restricted")
UNDECLARED_CLEARANCE: tuple[Sensitivity, ...] = ("public", "internal")
"""What a group not listed in `cleared_for` may receive: never customer or restricted data."""
STRICTEST: Sensitivity = "restricted"
"""Assumed when a caller does not say the job's sensitivity: fail closed."""

DEFAULT_TIMEOUT_S = 300.0
"""Per attempt, when policy sets none (litellm's own default is 6000 s)."""
DEFAULT_NUM_RETRIES = 1

PRICE_KEYS = ("input_cost_per_token", "output_cost_per_token")
PROVIDER_HOSTS: dict[str, tuple[str, ...]] = {
    "openai": ("api.openai.com",),
    "anthropic": ("api.anthropic.com",),
    "gemini": ("generativelanguage.googleapis.com",),
    "mistral": ("api.mistral.ai",),
    "groq": ("api.groq.com",),
    "deepseek": ("api.deepseek.com",),
    "xai": ("api.x.ai",),
    "cohere": ("api.cohere.ai", "api.cohere.com"),
    "together_ai": ("api.together.xyz",),
    "fireworks_ai": ("api.fireworks.ai",),
    "openrouter": ("openrouter.ai",),
    "perplexity": ("api.perplexity.ai",),
}
"""Each hosted provider's own API: only there is litellm's list price the price paid. A
self-hosted server named like a hosted model (`openai/gpt-4o` on vLLM) is not billed so."""


class NotCleared(AgentplaneError):
    """A model group would receive data it is not cleared for."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEntry(BaseModel):
    """One deployment, exactly as in a litellm proxy config's `model_list`."""

    model_config = ConfigDict(extra="allow", frozen=True)
    model_name: str
    litellm_params: dict[str, Any]

    @model_validator(mode="after")
    def _has_model(self) -> ModelEntry:
        if not isinstance(self.litellm_params.get("model"), str):
            raise ValueError("litellm_params needs a `model` string")
        problems = _price_problems(self.litellm_params, ("litellm_params",))
        if not isinstance(self.model_info.get("base_model", ""), str):
            problems.append((("model_info", "base_model"), "must be a litellm model name"))
        _raise(problems, self)
        return self

    @property
    def model_info(self) -> dict[str, Any]:
        info = (self.model_extra or {}).get("model_info") or {}
        return dict(info) if isinstance(info, dict) else {}


Problems = list[tuple[tuple[str | int, ...], str]]


def _raise(problems: Problems, model: BaseModel) -> None:
    """Every problem at once, each at its own place (pydantic prefixes the outer path), so
    `validate` points at the line that is wrong rather than at `models:`."""
    if problems:
        raise ValidationError.from_exception_data(
            type(model).__name__,
            [
                InitErrorDetails(type=PydanticCustomError("value_error", msg), loc=loc, input=None)
                for loc, msg in problems
            ],
        )


def _price_problems(params: dict[str, Any], at: tuple[str | int, ...]) -> Problems:
    given = [k for k in PRICE_KEYS if k in params]
    if given and len(given) != len(PRICE_KEYS):
        return [(at, f"give both {' and '.join(PRICE_KEYS)} (0 for a free model)")]
    return [
        ((*at, key), f"a price in USD per token (>= 0), got {params[key]!r}")
        for key in given
        if isinstance(params[key], bool)
        or not isinstance(params[key], int | float)
        or params[key] < 0
    ]


class RouterSettings(_Strict):
    """litellm's `router_settings`, the ones that mean something for one run's calls, so a
    litellm proxy config pasted under `models:` keeps its meaning."""

    timeout: float | None = Field(default=None, gt=0, description="Seconds per attempt")
    num_retries: int | None = Field(default=None, ge=0)
    routing_strategy: (
        Literal[
            "simple-shuffle",
            "least-busy",
            "usage-based-routing",
            "usage-based-routing-v2",
            "latency-based-routing",
            "cost-based-routing",
        ]
        | None
    ) = None
    allowed_fails: int | None = Field(
        default=None, ge=0, description="Failures before a deployment cools down"
    )
    cooldown_time: float | None = Field(default=None, ge=0, description="Seconds")
    retry_after: float | None = Field(
        default=None, ge=0, description="Least seconds between retries"
    )
    enable_pre_call_checks: bool | None = None
    max_fallbacks: int | None = Field(default=None, ge=0)
    fallbacks: list[dict[str, list[str]]] = Field(
        default_factory=list, description="As models.fallbacks (both lists count)"
    )
    context_window_fallbacks: list[Any] | None = None
    content_policy_fallbacks: list[Any] | None = None
    default_fallbacks: list[Any] | None = None

    @model_validator(mode="after")
    def _no_unchecked_fallbacks(self) -> RouterSettings:
        unchecked = ("context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks")
        why = "not supported: every fallback is checked against the job's data sensitivity, "
        _raise(
            [((k,), why + "so list it in models.fallbacks") for k in unchecked if getattr(self, k)],
            self,
        )
        return self

    def for_router(self) -> dict[str, Any]:
        """The settings litellm's Router takes as they are (retries and fallbacks apart)."""
        keys = (
            "routing_strategy",
            "allowed_fails",
            "cooldown_time",
            "retry_after",
            "enable_pre_call_checks",
            "max_fallbacks",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class When(_Strict):
    """Every given condition must hold; an empty When matches everything."""

    job_types: list[JobType] = Field(default_factory=list)
    sensitivity: list[Sensitivity] = Field(default_factory=list)
    mutating: bool | None = None
    latency: list[Latency] = Field(default_factory=list)
    max_budget_usd: float | None = Field(
        default=None, description="Matches when the job's usd budget is at most this"
    )


class Rule(_Strict):
    id: str
    when: When = Field(default_factory=When)
    use: str = Field(description="A model_name (group) from model_list")


@dataclass(frozen=True)
class PriceBasis:
    """Where a deployment's price comes from, before any call."""

    kind: Literal["policy", "provider", "unknown"]
    """policy: litellm_params' prices; provider: litellm's price map for `model`, if it lists
    it; unknown: no price can be known."""
    model: str
    reason: str


class FallbackLink(_Strict):
    """One link of a group's fallback chain, and whether this job may take it."""

    source: str
    group: str
    used: bool
    rule: str
    """A policy key (`models.fallbacks`, `models.cleared_for.<group>`, `models.unknown_cost`)."""
    reason: str


class Routing(_Strict):
    model_list: list[ModelEntry] = Field(default_factory=list)
    classes: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Shorthand: group -> litellm_params (one deployment)"
    )
    routes: list[Rule] = Field(default_factory=list)
    default: str | None = None
    fallbacks: list[dict[str, list[str]]] = Field(
        default_factory=list, description="litellm Router fallbacks: [{group: [next, ...]}]"
    )
    num_retries: int = Field(default=DEFAULT_NUM_RETRIES, ge=0)
    timeout: float | None = Field(
        default=None, gt=0, description=f"Seconds per attempt (default {DEFAULT_TIMEOUT_S:g})"
    )
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    cleared_for: dict[str, list[Sensitivity]] = Field(
        default_factory=dict,
        description="group -> the data sensitivities it may receive; a group not listed may "
        f"receive {', '.join(UNDECLARED_CLEARANCE)} only",
    )
    unknown_cost: Literal["allow", "refuse"] = Field(
        default="allow",
        description="refuse: a job with a usd budget never uses a group whose cost cannot be "
        "known; allow: it may, and each such call is recorded with cost unknown",
    )
    max_tokens: int | None = Field(
        default=None, gt=0, description="The most tokens one answer may have (budget caps it too)"
    )
    incomplete_answers: Literal["fail", "retry_once"] = Field(
        default="fail",
        description="An answer cut at max_tokens, or empty: the run fails, or asks once more",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Routing:
        problems: Problems = []
        for name, params in self.classes.items():
            if not isinstance(params.get("model"), str):
                problems.append((("classes", name), "needs a litellm `model` string"))
            problems += _price_problems(params, ("classes", name))
        for key in ("num_retries", "timeout"):
            inner = getattr(self.router_settings, key)
            if key in self.model_fields_set and inner is not None and inner != getattr(self, key):
                problems.append(((key,), f"set it once, here or in router_settings.{key}"))
        known = set(self.groups())
        unknown = "unknown model group {!r}".format
        for i, rule in enumerate(self.routes):
            if rule.use not in known:
                problems.append((("routes", i, "use"), unknown(rule.use)))
                continue
            uncleared = [s for s in rule.when.sensitivity if not self.cleared(rule.use, s)]
            if uncleared:
                problems.append(
                    (
                        ("routes", i, "use"),
                        f"route {rule.id} sends {', '.join(uncleared)} data to group "
                        f"{rule.use!r}, which is not cleared for it: routes choose, they do not "
                        f"grant; declare it in models.cleared_for.{rule.use}",
                    )
                )
        if self.default is not None and self.default not in known:
            problems.append((("default",), unknown(self.default)))
        for where, listed in (
            (("fallbacks",), self.fallbacks),
            (("router_settings", "fallbacks"), self.router_settings.fallbacks),
        ):
            for i, fb in enumerate(listed):
                for group in [*fb, *(g for targets in fb.values() for g in targets)]:
                    if group not in known:
                        problems.append(((*where, i), unknown(group)))
        problems += [(("cleared_for", g), unknown(g)) for g in self.cleared_for if g not in known]
        ids = [e.model_info.get("id") for e in self.entries() if e.model_info.get("id")]
        if len(ids) != len(set(ids)):
            problems.append((("model_list",), "model_info.id must be unique"))
        _raise(problems, self)
        return self

    # -- groups and their deployments ----------------------------------------------------

    def entries(self) -> list[ModelEntry]:
        shorthand = [ModelEntry(model_name=n, litellm_params=p) for n, p in self.classes.items()]
        return [*self.model_list, *shorthand]

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for e in self.entries():
            out.setdefault(e.model_name, []).append(dict(e.litellm_params))
        return out

    def deployments(self, groups: set[str] | None = None) -> list[dict[str, Any]]:
        """model_list entries (of groups), each with a `model_info.id`: the record names the
        deployment that answered by it."""
        out: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for e in self.entries():
            n = seen[e.model_name] = seen.get(e.model_name, -1) + 1
            if groups is not None and e.model_name not in groups:
                continue
            entry = e.model_dump()
            entry["model_info"] = {"id": f"{e.model_name}#{n}", **e.model_info}
            out.append(entry)
        return out

    # -- what a group may receive ---------------------------------------------------------

    def clearance(self, group: str) -> tuple[Sensitivity, ...]:
        listed = self.cleared_for.get(group)
        return UNDECLARED_CLEARANCE if listed is None else tuple(listed)

    def cleared(self, group: str, sensitivity: str) -> bool:
        return sensitivity in self.clearance(group)

    def clearance_rule(self, group: str) -> str:
        return f"models.cleared_for.{group}" if group in self.cleared_for else "models.cleared_for"

    def _clearance_text(self, group: str) -> str:
        said = ", ".join(self.clearance(group)) or "nothing"
        return said if group in self.cleared_for else f"{said}: not listed in cleared_for"

    # -- what a group costs ---------------------------------------------------------------

    def price_basis(self, entry: ModelEntry) -> PriceBasis:
        return price_basis(entry.litellm_params, entry.model_info)

    def cost_unknown(self, group: str) -> str | None:
        """Why a call to group cannot be priced before it is made, or None."""
        for e in self.entries():
            if e.model_name == group and (basis := self.price_basis(e)).kind == "unknown":
                return f"group {group}: {basis.reason}"
        return None

    def cost_notes(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(location in the models section, message) for each route, default or fallback whose
        cost cannot be known: what `validate` and `plan` show."""
        notes: list[tuple[tuple[str | int, ...], str]] = []
        uses: list[tuple[tuple[str | int, ...], str]] = [
            (("routes", i, "use"), r.use) for i, r in enumerate(self.routes)
        ]
        if self.default is not None:
            uses.append((("default",), self.default))
        for i, fb in enumerate(self.fallbacks):
            uses += [(("fallbacks", i), g) for targets in fb.values() for g in targets]
        for where, group in uses:
            if (why := self.cost_unknown(group)) is not None:
                then = (
                    "jobs with a usd budget will not use it (unknown_cost: refuse)"
                    if self.unknown_cost == "refuse"
                    else "its calls are recorded with cost unknown and a usd budget cannot trip"
                )
                notes.append((where, f"cost cannot be known: {why}; {then}"))
        return notes

    # -- fallbacks and what litellm needs -------------------------------------------------

    def fallbacks_of(self, group: str) -> list[str]:
        listed = [*self.fallbacks, *self.router_settings.fallbacks]
        return list(dict.fromkeys(g for fb in listed for g in fb.get(group, [])))

    def fallback_chain(
        self, group: str, sensitivity: str = STRICTEST, budget_usd: float | None = None
    ) -> list[FallbackLink]:
        """Each fallback of group, in order, and whether a job of this sensitivity and usd
        budget may take it, with the rule that says so."""
        chain = []
        for target in self.fallbacks_of(group):
            refusal = self.refusal(target, sensitivity, budget_usd)
            if refusal is not None:
                rule, why = refusal
                chain.append(
                    FallbackLink(
                        source=group, group=target, used=False, rule=rule, reason=f"not used: {why}"
                    )
                )
                continue
            chain.append(
                FallbackLink(
                    source=group,
                    group=target,
                    used=True,
                    rule="models.fallbacks",
                    reason=f"{target} is cleared for {sensitivity} data "
                    f"({self.clearance_rule(target)}: {self._clearance_text(target)})",
                )
            )
        return chain

    def refusal(
        self, group: str, sensitivity: str, budget_usd: float | None
    ) -> tuple[str, str] | None:
        """(rule, reason) when a job may not use group, or None."""
        if not self.cleared(group, sensitivity):
            return self.clearance_rule(group), (
                f"{group} is not cleared for {sensitivity} data "
                f"(it may receive {self._clearance_text(group)})"
            )
        if budget_usd is not None and self.unknown_cost == "refuse":
            why = self.cost_unknown(group)
            if why is not None:
                return "models.unknown_cost", (
                    f"the job has a usd budget and {why} (unknown_cost: refuse)"
                )
        return None

    def effective_timeout(self) -> float:
        return self.router_settings.timeout or self.timeout or DEFAULT_TIMEOUT_S

    def effective_retries(self) -> int:
        inner = self.router_settings.num_retries
        return self.num_retries if inner is None else inner

    def router_config(
        self,
        group: str,
        sensitivity: str | None = None,
        budget_usd: float | None = None,
    ) -> dict[str, Any]:
        """What the litellm adapter needs: the chosen group, the fallbacks this job may take,
        their deployments, retries, timeout and litellm's router settings.

        sensitivity is the job's data_sensitivity; without it only fallbacks cleared for
        restricted data are used (fail closed). NotCleared when group itself is not cleared.
        """
        if sensitivity is not None and (refusal := self.refusal(group, sensitivity, budget_usd)):
            rule, why = refusal
            raise NotCleared(f"model group {group} may not serve this job ({rule}): {why}")
        chain = self.fallback_chain(group, sensitivity or STRICTEST, budget_usd)
        used = [link.group for link in chain if link.used]
        return {
            "group": group,
            "model_list": self.deployments({group, *used}),
            "fallbacks": [{group: used}] if used else [],
            "num_retries": self.effective_retries(),
            "timeout": self.effective_timeout(),
            "router_settings": self.router_settings.for_router(),
            "refused_fallbacks": [[link.group, link.reason] for link in chain if not link.used],
            "max_tokens": self.max_tokens,
            "incomplete_retries": 1 if self.incomplete_answers == "retry_once" else 0,
            "unknown_cost": self.unknown_cost,
        }


def _host(url: str) -> str:
    """The host of a URL, without scheme, userinfo or port (core may not import urllib)."""
    rest = url.split("://", 1)[-1]
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.split(":", 1)[0].lower()


def provider_of(params: dict[str, Any]) -> str | None:
    given = params.get("custom_llm_provider")
    if isinstance(given, str):
        return given
    model = str(params.get("model", ""))
    return model.split("/", 1)[0] if "/" in model else None


def own_api(provider: str | None, api_base: str | None) -> bool:
    """Is api_base the provider's own API (None: litellm's default for the provider)?"""
    if not api_base:
        return True
    hosts = PROVIDER_HOSTS.get(provider or "", ())
    host = _host(api_base)
    return any(host == h or host.endswith("." + h) for h in hosts)


def price_basis(params: dict[str, Any], model_info: dict[str, Any] | None = None) -> PriceBasis:
    """Where one deployment's price comes from: policy's own prices first; then litellm's
    price map, but only for the provider's own API or a `model_info.base_model` policy
    names; else unknown (a self-hosted model is never billed at a hosted price)."""
    model = str(params.get("model", ""))
    if all(k in params for k in PRICE_KEYS):
        return PriceBasis("policy", model, "priced by policy (litellm_params)")
    base_model = (model_info or {}).get("base_model")
    if isinstance(base_model, str) and base_model:
        return PriceBasis("provider", base_model, f"priced as {base_model} (model_info.base_model)")
    api_base = params.get("api_base")
    api_base = api_base if isinstance(api_base, str) else None
    if own_api(provider_of(params), api_base):
        return PriceBasis("provider", model, f"litellm's list price for {model}")
    return PriceBasis(
        "unknown",
        model,
        f"{model} at {api_base} is not its provider's own API and policy gives no price: set "
        "litellm_params input_cost_per_token and output_cost_per_token (0 for a free model), "
        "or model_info.base_model to bill it as a listed model",
    )


def matches(
    when: When,
    job_type: str,
    sensitivity: str,
    mutating: bool,
    latency: str,
    budget_usd: float | None,
) -> list[str] | None:
    """The conditions that matched, or None when one fails."""
    met = []
    checks: list[tuple[list[str], str, str]] = [
        (list(when.job_types), job_type, "job type"),
        (list(when.sensitivity), sensitivity, "sensitivity"),
        (list(when.latency), latency, "latency"),
    ]
    for allowed, value, label in checks:
        if allowed:
            if value not in allowed:
                return None
            met.append(f"{label} {value}")
    if when.mutating is not None:
        if when.mutating != mutating:
            return None
        met.append("mutating" if mutating else "read-only")
    if when.max_budget_usd is not None:
        if budget_usd is None or budget_usd > when.max_budget_usd:
            return None
        met.append(f"budget ${budget_usd} <= ${when.max_budget_usd}")
    return met


def route(
    routing: Routing,
    job_type: str,
    sensitivity: str,
    mutating: bool,
    latency: str,
    budget_usd: float | None,
) -> tuple[str, str, str] | None:
    """(group, rule key, reason) of the first matching route whose group may serve the job,
    else the default if it may, else None (`why_no_route` says why)."""
    skipped: list[str] = []
    for rule in routing.routes:
        met = matches(rule.when, job_type, sensitivity, mutating, latency, budget_usd)
        if met is None:
            continue
        if (refusal := routing.refusal(rule.use, sensitivity, budget_usd)) is not None:
            skipped.append(f"route {rule.id} skipped: {refusal[1]}")
            continue
        why = ", ".join(met) or "matches every job"
        return (
            rule.use,
            f"models.routes.{rule.id}",
            "; ".join([f"route {rule.id}: {why}", *skipped]),
        )
    default = routing.default
    if default is not None and routing.refusal(default, sensitivity, budget_usd) is None:
        why = "; ".join(["no route matched; policy default", *skipped])
        return default, "models.default", why
    return None


def why_no_route(
    routing: Routing,
    job_type: str,
    sensitivity: str,
    mutating: bool,
    latency: str,
    budget_usd: float | None,
) -> str:
    """Why `route` found no group for this job: what a plan says instead of a model."""
    reasons = []
    for rule in routing.routes:
        if matches(rule.when, job_type, sensitivity, mutating, latency, budget_usd) is None:
            continue
        if (refusal := routing.refusal(rule.use, sensitivity, budget_usd)) is not None:
            reasons.append(f"route {rule.id}: {refusal[1]} ({refusal[0]})")
    if routing.default is None:
        reasons.append("no route matched and policy has no models.default")
    elif (refusal := routing.refusal(routing.default, sensitivity, budget_usd)) is not None:
        reasons.append(f"default {routing.default}: {refusal[1]} ({refusal[0]})")
    return "; ".join(reasons)
