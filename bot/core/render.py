"""Rendering: plans, evidence and records as text for terminals and PR comments.

Functions over the models. What they return is shown to people and posted, so each
public one ends in the redactor: the caller's (`redact=`, e.g. the engine's, widened with
a door's secrets) or, by default, one built from this host's environment.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.plan import Plan
from bot.core.record import SECRET_SCAN, RunRecord

Redact = Callable[[str], str]

_GITHUB_KEY = re.compile(r"github:(\d+)(?!\d)")


@dataclass(frozen=True)
class Section:
    """One evidence section, built once and shown twice: `body_text` in terminals and
    plain-text reports, `body_markdown` (GitHub-flavoured) in PR comments. A family
    returns these so the renderer needs to know no family by name; `collapsed` asks the
    Markdown renderer to fold a long section behind <details>."""

    title: str
    body_text: str
    body_markdown: str
    collapsed: bool = False


def with_names(text: str, names: Mapping[str, str] | None) -> str:
    """Identity keys shown as people know them: `github:<id>` becomes the login the door
    saw that account use (names: key -> login); a key with no known login stays as it is.
    Display only: nothing compares what this returns."""
    if not names:
        return text
    return _GITHUB_KEY.sub(lambda m: names.get(m.group(0), m.group(0)), text)


def record_names(rec: RunRecord) -> dict[str, str]:
    """The display names a record itself carries: each approver's `name`."""
    return {a.approver: a.name for a in rec.approvals if a.name}


def _redact(text: str, redact: Redact | None) -> str:
    # Pure: the door passes the engine's one redactor; every path out (comment, check,
    # terminal) applies it again on its way out, so nothing here depends on that.
    return redact(text) if redact is not None else text


def _mark(granted: bool) -> str:
    return "+" if granted else "x"


def render_plan(p: Plan, redact: Redact | None = None) -> str:
    return _redact(_plan(p), redact)


def _plan(p: Plan) -> str:
    lines = [
        f"Plan for job {p.job_name} ({p.job_digest[:19]}) at {p.commit[:12]}",
        f"  job type   {p.job_type}  ({p.job_type_reason})",
        f"  requester  {p.requester} via {p.door}",
        f"  {_mark(p.allowed.granted)} run        {p.allowed.reason}  [{p.allowed.rule}]",
    ]
    for d in p.decisions:
        lines.append(
            f"  {_mark(d.granted)} {d.kind:<10} {d.subject}  [{d.rule}]"
            + ("" if d.granted else f"  {d.reason}")
        )
    for g in p.gates:
        paths = f" on {', '.join(g.paths)}" if g.paths else ""
        lines.append(f"  ? gate       {g.action}{paths}: {g.approvers.describe()}  [{g.rule}]")
    b = p.budget
    lines.append(
        f"  $ budget     usd {b.usd}, minutes {b.minutes}, tool calls {b.tool_calls}"
        f"  [{p.budget_rule}]"
    )
    if p.model is not None:
        lines.append(
            f"  * model      {p.model.params.get('model')} (class {p.model.model_class}: "
            f"{p.model.reason})  [{p.model.rule}]"
        )
    if p.clarification:
        lines.append(f"  ! clarify    {p.clarification}")
    return "\n".join(lines)


def render_tool_calls(rec: RunRecord, redact: Redact | None = None) -> str:
    return _redact(_tool_calls(rec), redact)


def _tool_calls(rec: RunRecord) -> str:
    lines = [f"Tool calls ({len(rec.tool_calls)}):"]
    for c in rec.tool_calls:
        arg = c.arguments.get("path") or c.arguments.get("command") or ""
        lines.append(f"  {c.seq:>3}. {c.tool:<9} {str(arg)[:60]:<60} {c.decision}  [{c.rule}]")
    return "\n".join(lines)


def render_egress(egress: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sandbox's connections through the egress proxy, by destination and decision;
    the browser's own are marked, since Chromium makes some of its own accord (updates)."""
    counts = Counter(
        (e["decision"], f"{e['host']}:{e['port']}" + (f" [{e['by']}]" if e.get("by") else ""))
        for e in egress
    )
    lines = []
    for decision, label in (
        ("allow", "allowed"),
        ("unreachable", "unreachable"),
        ("deny", "denied"),
    ):
        dests = [
            dest + (f" ({n}x)" if n > 1 else "")
            for (d, dest), n in sorted(counts.items())
            if d == decision
        ]
        if dests:
            lines.append(f"Network {label}: {', '.join(dests)}")
    return lines


def render_flags(rec: RunRecord) -> list[str]:
    """Added lines that look like tokens: file and line, never the value."""
    flags = [c.reason for c in rec.tool_calls if c.tool == SECRET_SCAN]
    if not flags:
        return []
    return ["Flagged in the proposal (may be secrets; check before approving):"] + [
        f"  {f}" for f in flags
    ]


def render_evidence(
    rec: RunRecord, patch: str, sections: Sequence[str] = (), redact: Redact | None = None
) -> str:
    """sections: tool-specific evidence already rendered (SQL results, browser steps)."""
    return _redact(_evidence(rec, patch, sections), redact)


def _evidence(rec: RunRecord, patch: str, sections: Sequence[str]) -> str:
    lines = [_tool_calls(rec), *render_egress(rec.egress), ""]
    for section in sections:
        lines += [section, ""]
    models = {m.model for m in rec.model_calls}
    lines.append(
        f"Model: {', '.join(sorted(models)) or '(none)'}; {len(rec.model_calls)} calls; "
        f"cost ${rec.cost_usd:.4f}"
    )
    if rec.final_message:
        lines.append(f"Agent says: {rec.final_message.strip()}")
    if rec.proposal is None:
        lines.append("Proposal: no changes.")
        return "\n".join(lines)
    pr = rec.proposal
    if pr.request_only:
        lines.append(f"Proposal {pr.digest[:19]}: the held browser request above, no files.")
        return "\n".join(lines)
    lines.append(
        f"Proposal {pr.digest[:19]}: {len(pr.changed)} file(s), +{pr.additions} -{pr.deletions}"
    )
    lines += [f"  {path}" for path in pr.changed]
    if pr.out_of_scope:
        lines.append("Left out (outside the write scope): " + ", ".join(pr.out_of_scope))
    lines += render_flags(rec)
    lines += ["", patch.rstrip()]
    return "\n".join(lines)


def render_applied(applied: Mapping[str, str]) -> list[str]:
    """What apply did: the browser request it released and/or the commit it made."""
    lines = []
    if "request" in applied:
        lines.append(f"released {applied['request']} (HTTP {applied.get('status', '?')})")
    if "commit" in applied:
        lines.append(f"committed {applied['commit'][:12]} on branch {applied['branch']}")
    return lines


def render_summary(rec: RunRecord, redact: Redact | None = None) -> str:
    last = rec.transitions[-1] if rec.transitions else None
    return _redact(
        f"{rec.run_id}  {rec.state:<18} {rec.job_name}  by {rec.requester_name or rec.requester}"
        f"  ${rec.cost_usd:.4f}" + (f"  ({last.reason})" if last else ""),
        redact,
    )


STATE_HEADLINE = {
    "awaiting_approval": "waiting for an approving review from an allowed approver",
    "applied": "applied",
    "completed": "completed with no changes to apply",
    "needs_clarification": "needs clarification",
    "denied": "denied by policy",
    "rejected": "rejected by a reviewer",
    "failed": "failed",
    "budget_exceeded": "stopped: budget exceeded",
    "cancelled": "cancelled",
}


def render_pr_comment(
    rec: RunRecord,
    plan_text: str,
    patch: str,
    audit_head: str | None,
    sections: Sequence[str] = (),
    redact: Redact | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """The evidence comment on a pull request: one per job, edited as the run moves.

    names maps identity keys to the logins to show (the record's approvers' names are
    always used); people read logins, the record keeps ids. The proposal and the evidence
    sections are shown as they are."""
    shown = {**record_names(rec), **(names or {})}
    return _redact(_pr_comment(rec, plan_text, patch, audit_head, sections, shown), redact)


def _pr_comment(
    rec: RunRecord,
    plan_text: str,
    patch: str,
    audit_head: str | None,
    sections: Sequence[str],
    names: Mapping[str, str],
) -> str:
    last = with_names(rec.transitions[-1].reason if rec.transitions else "", names)
    requester = with_names(rec.requester, names)
    lines = [
        f"### agentplane: `{rec.job_name}` is {STATE_HEADLINE.get(rec.state, rec.state)}",
        f"Run `{rec.run_id}` on `{rec.commit[:12]}`, requested by @{requester}. {last}",
        "",
        "<details><summary>Plan (grants, denials, gates, model; each with its rule)</summary>",
        "",
        "```text",
        with_names(plan_text, names),
        "```",
        "</details>",
        "",
        "```text",
        _tool_calls(rec),
        *render_egress(rec.egress),
        "```",
    ]
    for section in sections:
        lines += [
            "<details open><summary>Evidence</summary>",
            "",
            "```text",
            section,
            "```",
            "</details>",
            "",
        ]
    if rec.state == "needs_clarification" and rec.question is not None:
        lines += [
            f"**The agent asks:** {rec.question.text}",
            "",
            "Answer with a comment: `/agentplane answer <your answer>`.",
            "",
        ]
    for c in rec.clarifications:
        lines.append(f"Asked: {c.question} Answered by @{with_names(c.by, names)}: {c.answer}")
    if rec.proposal is not None and rec.proposal.request_only:
        lines.append(f"**Proposal** `{rec.proposal.digest[:19]}`: the held browser request above.")
    elif rec.proposal is not None:
        pr = rec.proposal
        lines += [
            f"**Proposal** `{pr.digest[:19]}`: {len(pr.changed)} file(s), "
            f"+{pr.additions} -{pr.deletions}",
            *render_flags(rec),
            "",
            "```diff",
            patch.rstrip(),
            "```",
        ]
    if rec.applied:
        lines.append("Applied: " + "; ".join(render_applied(rec.applied)) + ".")
    models = ", ".join(sorted({m.model for m in rec.model_calls})) or "(none)"
    lines += [
        "",
        f"Model: {models}; cost ${rec.cost_usd:.4f}. "
        f"Audit head: `{audit_head or '(none)'}` (verify with `agentplane audit verify "
        f"--expect-head {audit_head or ''}`).",
    ]
    return "\n".join(lines)
