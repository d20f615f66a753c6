"""Artifact contracts: what a run must leave for a reviewer before it counts as done.

A job names contracts (`artifact_contract: diff` or a list); each is a list of items,
and each item is one plain check on the finished run: an artifact whose name matches
a glob, a proposal part of a kind, or the agent's summary. The vocabulary is data:
the built-ins below, which policy's `artifact_contracts` extends or redefines. Checked
when the agent stops: a run that claims success without them ends `contract_unmet`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator
from wcmatch import fnmatch


class ContractItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="What the reviewer gets, as the evidence names it")
    artifact: str | None = Field(default=None, description="Glob an artifact's name must match")
    part: str | None = Field(default=None, description="A proposal part of this kind (`*`: any)")
    summary: bool = Field(default=False, description="The agent's closing summary, non-empty")

    @model_validator(mode="after")
    def _one_check(self) -> ContractItem:
        if sum([self.artifact is not None, self.part is not None, self.summary]) != 1:
            raise ValueError("give exactly one of artifact, part, summary")
        return self


def _items(*items: ContractItem) -> tuple[ContractItem, ...]:
    return items


_DIFF = ContractItem(name="a proposed change", part="*")
_TRACE = ContractItem(name="a browser trace", artifact="trace.zip")
BUILTIN: Mapping[str, tuple[ContractItem, ...]] = {
    "diff": _items(_DIFF),
    "trace": _items(_TRACE),
    "screenshots": _items(ContractItem(name="screenshots", artifact="*.png")),
    "query_evidence": _items(ContractItem(name="query evidence", artifact="sql-*.json")),
    "document": _items(ContractItem(name="a document diff", artifact="documents.json")),
    "diff_plus_trace": _items(_DIFF, _TRACE),
    "report": _items(ContractItem(name="the agent's report", summary=True)),
}


class Clause(BaseModel):
    """One item of a contract the job named, as the plan carries it."""

    model_config = ConfigDict(frozen=True)
    contract: str
    item: ContractItem


class ContractCheck(BaseModel):
    """One item of one contract, met or not, as the record keeps it."""

    contract: str
    item: str
    met: bool
    detail: str = ""


class UnknownContract(ValueError):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(
            f"artifact contract {name!r} is not defined: known are {', '.join(sorted(known))} "
            "(policy can add one under artifact_contracts)"
        )


def vocabulary(
    extra: Mapping[str, Sequence[ContractItem]],
) -> dict[str, tuple[ContractItem, ...]]:
    """The built-ins with policy's contracts over them (policy's win: it may be stricter)."""
    return {**BUILTIN, **{k: tuple(v) for k, v in extra.items()}}


def resolve(names: Sequence[str], known: Mapping[str, Sequence[ContractItem]]) -> list[Clause]:
    """Each named contract's items; UnknownContract for a name the vocabulary lacks."""
    out: list[Clause] = []
    for name in names:
        if name not in known:
            raise UnknownContract(name, list(known))
        out += [Clause(contract=name, item=item) for item in known[name]]
    return out


def check(
    clauses: Sequence[Clause],
    artifacts: Sequence[str],
    part_kinds: Sequence[str],
    summary: str | None,
) -> list[ContractCheck]:
    """Pure: each item against what the run left."""
    results = []
    for clause in clauses:
        contract, item = clause.contract, clause.item
        if item.artifact is not None:
            found = [a for a in artifacts if fnmatch.fnmatch(a, item.artifact)]
            met, detail = bool(found), ", ".join(found) or f"no artifact matches {item.artifact}"
        elif item.part is not None:
            kinds = [k for k in part_kinds if item.part in ("*", k)]
            met = bool(kinds)
            detail = ", ".join(dict.fromkeys(kinds)) or (
                "no proposal" if item.part == "*" else f"no {item.part} part in the proposal"
            )
        else:
            met = bool(summary and summary.strip())
            detail = "" if met else "the agent left no summary"
        results.append(ContractCheck(contract=contract, item=item.name, met=met, detail=detail))
    return results
