"""Model routing by risk, not fashion: model groups in litellm's `model_list` format, and
rules on task class, data sensitivity, mutation risk, budget and latency.

`route()` is pure and explainable: it returns the group and the rule that chose it,
with the conditions that matched. litellm's Router does fallbacks and retries.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.core.job import JobType

Sensitivity = Literal["public", "internal", "customer", "restricted"]
Latency = Literal["interactive", "batch"]


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
        return self


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
    num_retries: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _known_groups(self) -> Routing:
        for name, params in self.classes.items():
            if not isinstance(params.get("model"), str):
                raise ValueError(f"classes.{name}: needs a litellm `model` string")
        known = set(self.groups())
        for i, rule in enumerate(self.routes):
            if rule.use not in known:
                raise ValueError(f"routes[{i}].use: unknown model group {rule.use!r}")
        if self.default is not None and self.default not in known:
            raise ValueError(f"default: unknown model group {self.default!r}")
        for i, fb in enumerate(self.fallbacks):
            for group in [*fb, *(g for targets in fb.values() for g in targets)]:
                if group not in known:
                    raise ValueError(f"fallbacks[{i}]: unknown model group {group!r}")
        return self

    def entries(self) -> list[ModelEntry]:
        shorthand = [ModelEntry(model_name=n, litellm_params=p) for n, p in self.classes.items()]
        return [*self.model_list, *shorthand]

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for e in self.entries():
            out.setdefault(e.model_name, []).append(dict(e.litellm_params))
        return out

    def fallbacks_of(self, group: str) -> list[str]:
        return [g for fb in self.fallbacks for g in fb.get(group, [])]

    def router_config(self, group: str) -> dict[str, Any]:
        """What the litellm adapter needs: the chosen group, its fallbacks, their deployments."""
        wanted = {group, *self.fallbacks_of(group)}
        return {
            "group": group,
            "model_list": [e.model_dump() for e in self.entries() if e.model_name in wanted],
            "fallbacks": [{group: self.fallbacks_of(group)}] if self.fallbacks_of(group) else [],
            "num_retries": self.num_retries,
        }


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
    """(group, rule key, reason) of the first matching route, else the default, else None."""
    for rule in routing.routes:
        met = matches(rule.when, job_type, sensitivity, mutating, latency, budget_usd)
        if met is not None:
            why = ", ".join(met) or "matches every job"
            return rule.use, f"models.routes.{rule.id}", f"route {rule.id}: {why}"
    if routing.default is not None:
        return routing.default, "models.default", "no route matched; policy default"
    return None
