"""The tool broker: the only way a model's tool call reaches a tool.

For each call it checks the grant and the scope, decides allow / deny /
needs_approval with the rule behind it, runs allowed calls, and hands the call,
decision and result to the recorder. A denial is a tool result the model can
read, never an exception that ends the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.adapters.safefs import UnsafePath
from bot.core.globs import match_any
from bot.core.plan import Plan
from bot.core.record import Decision, ToolCall
from bot.families.ask.tools import NeedsAnswer
from bot.families.base import ToolFailure, ToolRefused, ToolSpec
from bot.families.interface import FamilyError

MAX_RESULT_IN_RECORD = 4000
ALWAYS = frozenset({"ask"})
"""Capabilities no policy needs to grant: asking instead of assuming is never a risk."""


@dataclass(frozen=True)
class ToolVerdict:
    decision: Decision
    rule: str
    reason: str


def decide(plan: Plan, spec: ToolSpec | None, name: str, args: dict[str, Any]) -> ToolVerdict:
    """Pure: may this call run under plan?"""
    if spec is None:
        return ToolVerdict("deny", "broker#known-tools", f"there is no tool named {name!r}")
    if spec.capability in ALWAYS:
        return ToolVerdict("allow", f"broker#{spec.capability}", "asking a human is always allowed")
    grant = next(
        (d for d in plan.decisions if d.kind == "tool" and d.subject == spec.capability), None
    )
    if grant is None or not grant.granted:
        rule = grant.rule if grant else plan.tools_rule or "policy#tools"
        why = grant.reason if grant else f"the job was not granted the {spec.capability} tool"
        return ToolVerdict("deny", rule, why)
    try:
        access = spec.access(args)
    except ToolFailure as exc:
        return ToolVerdict("deny", "broker#paths", str(exc))
    if access is None:
        return ToolVerdict("allow", grant.rule, f"{spec.capability} granted")
    kind, path = access
    globs = plan.granted(kind)
    if not match_any(path, globs):
        rule = next((d.rule for d in plan.decisions if d.kind == kind), grant.rule)
        outside = f"{path!r} is outside the {kind} scope {globs or '(none)'}"
        return ToolVerdict("deny", rule, outside)
    if kind == "write" and any(g.action == "write" for g in plan.gates):
        gate = next(g for g in plan.gates if g.action == "write")
        return ToolVerdict(
            "needs_approval", gate.rule, "staged in the proposal; applied only after approval"
        )
    return ToolVerdict("allow", grant.rule, f"{path!r} is in the {kind} scope")


class Broker:
    def __init__(
        self,
        plan: Plan,
        tools: list[ToolSpec],
        record: Callable[[ToolCall], None],
        redact: Callable[[str], str] = lambda s: s,
        already: int = 0,
    ) -> None:
        self.plan = plan
        self.tools = {t.name: t for t in tools}
        self.record = record
        self.redact = redact
        self.calls = already
        """Calls so far in this run, including before a pause for clarification."""

    def schemas(self) -> list[dict[str, Any]]:
        """Only granted tools are offered; a model that calls others is denied all the same."""
        granted = set(self.plan.granted("tool")) | ALWAYS
        return [t.schema() for t in self.tools.values() if t.capability in granted]

    def _record(
        self,
        name: str,
        args: dict[str, Any],
        verdict: ToolVerdict,
        ok: bool,
        output: str,
        started: float,
        status: str = "",
    ) -> None:
        self.record(
            ToolCall(
                seq=self.calls,
                tool=name,
                arguments=json.loads(self.redact(json.dumps(args))),
                decision=verdict.decision,
                rule=verdict.rule,
                reason=verdict.reason,
                ok=ok,
                result=self.redact(output)[:MAX_RESULT_IN_RECORD],
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                status=status,
            )
        )

    def call(self, name: str, raw_arguments: str) -> str:
        started = time.perf_counter()
        self.calls += 1
        try:
            args = json.loads(raw_arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            args, verdict = (
                {"_raw": raw_arguments[:500]},
                ToolVerdict("deny", "broker#arguments", f"arguments are not a JSON object: {exc}"),
            )
        else:
            verdict = decide(self.plan, self.tools.get(name), name, args)
        ok, output, status = False, "", ""
        if verdict.decision == "deny":
            output = f"DENIED by {verdict.rule}: {verdict.reason}"
        else:
            try:
                outcome = self.tools[name].handler(args)
                output, ok, status = outcome.output, True, outcome.status
                if outcome.rule and verdict.decision == "allow":
                    verdict = ToolVerdict("allow", outcome.rule, verdict.reason)
                if outcome.held is not None:
                    gate = next((g for g in self.plan.gates if g.action == outcome.held), None)
                    verdict = ToolVerdict(
                        "needs_approval",
                        gate.rule if gate else "policy#gates",
                        f"{outcome.held} held for approval",
                    )
            except NeedsAnswer as question:
                self._record(
                    name, args, verdict, True, f"waiting for an answer: {question}", started
                )
                raise
            except ToolRefused as exc:
                verdict = ToolVerdict("deny", exc.rule, exc.reason)
                output = f"DENIED by {exc.rule}: {exc.reason}"
            except ToolFailure as exc:
                output = f"ERROR: {exc}"
            except (OSError, UnsafePath) as exc:
                # The host said no (a race with the sandbox, a name too long, a full disk):
                # the call failed and is recorded as such; the run goes on, never crashes.
                output = f"ERROR: {name} failed on the host: {exc}"
            except FamilyError as exc:
                # A family could not do it (a hostile document it refused to open): the
                # model reads why; what must end the run (a quota) is not a FamilyError.
                output = f"ERROR: {exc}"
        output = self.redact(output)
        self._record(name, args, verdict, ok, output, started, status)
        return output
