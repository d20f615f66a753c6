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
from bot.core.record import (
    PATCH,
    SECRET_SCAN,
    AppliedPart,
    EgressEntry,
    Proposal,
    RunRecord,
    upgrade_applied,
)

Redact = Callable[[str], str]

_GITHUB_KEY = re.compile(r"github:(\d+)(?!\d)")


@dataclass(frozen=True)
class Section:
    """One evidence section, built once and shown twice: `body_text` in terminals and
    plain-text reports, `body_markdown` (GitHub-flavoured) in PR comments. A family
    returns these so the renderer needs to know no family by name.

    body_text is shown as it is, so it carries its own heading line ("SQL evidence: ...");
    `title` heads the Markdown form (a heading, or the summary of <details>). `collapsed`
    folds it behind <details>; sections longer than LONG_SECTION lines fold anyway.
    Anything untrusted in body_markdown (pages, rows, model output) belongs in `fenced`."""

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
        if g.never_met:
            lines.append(f"  ! gate       {g.action} can never be met: {g.never_met}")
    b = p.budget
    lines.append(
        f"  $ budget     usd {b.usd}, minutes {b.minutes}, tool calls {b.tool_calls}"
        f"  [{p.budget_rule}]"
    )
    lines += [f"  ! budget     the job's {note}" for note in p.budget_capped]
    if p.model is not None:
        lines.append(
            f"  * model      {p.model.params.get('model')} (class {p.model.model_class}: "
            f"{p.model.reason})  [{p.model.rule}]"
        )
        for link in p.model.chain:
            lines.append(
                f"  {_mark(link.used)} fallback   {link.source} -> {link.group}: "
                f"{'used' if link.used else 'not used'} ({link.reason})  [{link.rule}]"
            )
        if p.model.cost_note:
            lines.append(f"  ! cost       {p.model.cost_note}")
    if p.contract:
        items = ", ".join(f"{c.contract}: {c.item.name}" for c in p.contract)
        lines.append(f"  = contract   {items}")
    if p.clarification:
        lines.append(f"  ! clarify    {p.clarification}")
    return "\n".join(lines)


def render_tool_calls(rec: RunRecord, redact: Redact | None = None) -> str:
    return _redact(_tool_calls(rec), redact)


def _tool_calls(rec: RunRecord) -> str:
    return tool_calls_section(rec).body_text


# What a reviewer scans a tool-call table for: each decision as a mark and a word, so the
# row reads without colour and a search for "denied" finds the refused calls.
DECISION_MARK = {"allow": "✅ allowed", "deny": "❌ denied", "needs_approval": "✋ held"}

LONG_SECTION = 40
"""Markdown lines past which a section is folded behind <details> even when it did not
ask to be: a PR comment should open on the headline, not on a page of query plans."""

_ARG_WIDTH = 60


def _argument(arguments: Mapping[str, Any]) -> str:
    """The call's subject: a path or command, a URL, a SQL statement, or the element a
    browser step names (with what it fills in or selects)."""
    for key in ("path", "command", "url", "sql"):
        if value := arguments.get(key):
            return str(value)
    target = " ".join(
        str(arguments[k]) if k == "role" else repr(arguments[k])
        for k in ("role", "name", "label", "selector")
        if isinstance(arguments.get(k), str) and arguments[k]
    )
    extra = next((arguments[k] for k in ("text", "option") if k in arguments), None)
    return target + (f" = {extra!r}" if extra is not None and target else "")


def tool_calls_section(rec: RunRecord) -> Section:
    """Every tool call with its decision and rule: aligned lines, or a table with a mark."""
    title = f"Tool calls ({len(rec.tool_calls)})"
    lines = [f"{title}:"]
    rows = ["| # | tool | argument | decision | rule |", "|---:|---|---|---|---|"]
    for c in rec.tool_calls:
        arg = _argument(c.arguments)
        lines.append(f"  {c.seq:>3}. {c.tool:<9} {arg[:_ARG_WIDTH]:<60} {c.decision}  [{c.rule}]")
        rows.append(
            f"| {c.seq} | {_cell_code(c.tool)} | {_cell_code(_shorten(arg))} "
            f"| {DECISION_MARK.get(c.decision, c.decision)} | {_cell_code(c.rule)} |"
        )
    return Section(
        title=title,
        body_text="\n".join(lines),
        body_markdown="\n".join(rows) if rec.tool_calls else "No tool calls.",
    )


def _shorten(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= _ARG_WIDTH else one_line[: _ARG_WIDTH - 1] + "…"


def _cell_code(text: str) -> str:
    """Text as a code span inside a GFM table cell: a pipe would end the cell and a
    newline the row, so both are neutralised; an empty cell stays empty."""
    if not text:
        return ""
    return _code(" ".join(text.split()).replace("|", "\\|"))


def _code(text: str) -> str:
    # A code span's delimiter must be a backtick run the text does not contain.
    tick = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(r) for r in runs), default=0)


def fenced(text: str, lang: str = "text") -> str:
    """A fenced code block that the text cannot close: shown exactly as it is, never as
    Markdown. Untrusted text (model output, pages, query results) goes through here, so
    it cannot draw images whose URLs carry data away, or headings that pass for ours."""
    fence = "`" * max(3, _longest_run(text, "`") + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def render_egress(egress: Sequence[EgressEntry]) -> list[str]:
    """The sandbox's connections through the egress proxy, by destination and decision;
    the browser's own are marked, since Chromium makes some of its own accord (updates)."""
    return [f"Network {label}: {', '.join(dests)}" for label, dests in _egress(egress)]


def _egress(egress: Sequence[EgressEntry]) -> list[tuple[str, list[str]]]:
    counts = Counter(
        (
            e.decision,
            f"{e.host}:{e.port}" + (f" [{e.by or e.phase}]" if e.by or e.phase == "setup" else ""),
        )
        for e in egress
    )
    found = []
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
            found.append((label, dests))
    return found


def network_section(rec: RunRecord) -> Section | None:
    """The egress summary, or None when the sandbox made no connection."""
    found = _egress(rec.egress)
    if not found:
        return None
    return Section(
        title="Network",
        body_text="\n".join(render_egress(rec.egress)),
        body_markdown="\n".join(
            f"- {label}: " + ", ".join(_code(d) for d in dests) for label, dests in found
        ),
    )


def model_line(rec: RunRecord) -> str:
    """Which models answered and what they cost, saying what is not known: a cost policy
    gives no price for, tokens the server did not report, and answers from a fallback."""
    calls = rec.model_calls
    models = ", ".join(sorted({m.model for m in calls})) or "(none)"
    line = f"Model: {models}; {len(calls)} calls; cost ${rec.cost_usd:.4f}"
    if unpriced := sum(m.cost_usd is None for m in calls):
        line += f" (cost unknown for {unpriced} call{'s' if unpriced > 1 else ''})"
    if estimated := sum(m.tokens_estimated for m in calls):
        line += f"; tokens estimated for {estimated} call{'s' if estimated > 1 else ''}"
    for m in calls:
        if (m.group and m.group != m.model_class) or m.retries:
            by = f"fallback {m.group}" if m.group and m.group != m.model_class else m.model_class
            line += f"; call {m.seq} answered by {by} after {m.retries} retries"
    return line


def verification_sections(rec: RunRecord) -> list[Section]:
    """Each verify command the control plane ran on the proposal: passed or failed, with
    the tail of its output (untrusted text: fenced), failures open, passes folded."""
    sections = []
    for v in rec.verification:
        status = "timed out" if v.exit_code is None else f"exit {v.exit_code}"
        mark = "passed" if v.passed else "FAILED"
        head = f"{mark}: {v.command} ({status}, {v.duration_ms:.0f} ms)"
        sections.append(
            Section(
                title=f"{'✅' if v.passed else '❌'} {_code(v.command)} ({status})",
                body_text="\n".join(
                    [f"Verification {head}", *v.output.rstrip().splitlines()[-15:]]
                ),
                body_markdown=fenced(v.output.rstrip() or "(no output)"),
                collapsed=v.passed,
            )
        )
    return sections


def setup_section(rec: RunRecord) -> Section | None:
    """The setup phase: each command with its exit status and the tail of its output
    (untrusted: fenced), or that the environment was reused; with the environment's digest
    and trust domain. Open when setup failed, folded when it passed."""
    setup = rec.setup
    if setup is None:
        return None
    where = f"environment {setup.env_digest[:19] or '(none)'}, trust domain {setup.trust_domain}"
    if setup.reused:
        head = f"Setup: reused {where}" + (f", built by {setup.built_by}" if setup.built_by else "")
    elif setup.ok:
        head = f"Setup: built {where} ({setup.size_bytes} bytes)"
    else:
        head = f"Setup FAILED: {setup.error}"
    text, markdown = [head], [_code(head.removeprefix("Setup: "))]
    for step in setup.steps:
        status = "timed out" if step.exit_code is None else f"exit {step.exit_code}"
        tail = step.output.rstrip()
        text += [f"$ {step.command}", f"[{status}, {step.duration_ms:.0f} ms]"]
        text += tail.splitlines()[-15:]
        markdown += [
            "",
            f"{'✅' if step.passed else '❌'} {_code(step.command)} ({status})",
            "",
            fenced(tail or "(no output)"),
        ]
    title = "Setup" + (" (reused)" if setup.reused else "" if setup.ok else " FAILED")
    return Section(
        title=title,
        body_text="\n".join(text),
        body_markdown="\n".join(markdown),
        collapsed=setup.ok,
    )


def contract_section(rec: RunRecord) -> Section | None:
    """The job's artifact contract, item by item, met or not; None without a contract."""
    if not rec.contract:
        return None
    rows = [(_mark(c.met), c.contract, c.item, c.detail) for c in rec.contract]
    return Section(
        title="Contract",
        body_text="\n".join(
            ["Contract:"]
            + [f"  {m} {contract}: {item} ({detail})" for m, contract, item, detail in rows]
        ),
        body_markdown="\n".join(
            ["| | contract | item | found |", "|---|---|---|---|"]
            + [
                f"| {'✅' if c.met else '❌'} | {_cell_code(c.contract)} | {c.item} | "
                f"{_cell_code(c.detail) if c.detail else ''} |"
                for c in rec.contract
            ]
        ),
    )


def summary_section(rec: RunRecord) -> Section | None:
    """The agent's closing words, or None when it left none. Model output: fenced."""
    if not rec.final_message or not rec.final_message.strip():
        return None
    said = rec.final_message.strip()
    return Section(
        title="Agent's summary",
        body_text=f"Agent says: {said}",
        body_markdown=fenced(said),
    )


def as_section(section: str | Section) -> Section:
    """A family's evidence as a Section. A plain string (what families returned before
    they returned Sections) is shown as it is: its own text, a text block in Markdown."""
    if isinstance(section, Section):
        return section
    return Section(title="Evidence", body_text=section, body_markdown=fenced(section))


def section_text(section: Section) -> str:
    """body_text is complete on its own (it carries its heading, as terminals show it)."""
    return section.body_text


def section_markdown(section: Section, heading: str = "####") -> str:
    """Its title as a heading, or, when it asks to be collapsed or is long, as the summary
    of a closed <details>: the reviewer opens what they want to read."""
    body = section.body_markdown.rstrip()
    if section.collapsed or body.count("\n") + 1 > LONG_SECTION:
        return "\n".join(
            [f"<details><summary>{section.title}</summary>", "", body, "", "</details>"]
        )
    return "\n".join([f"{heading} {section.title}", "", body])


def render_flags(rec: RunRecord) -> list[str]:
    """Added lines that look like tokens: file and line, never the value."""
    flags = _flags(rec)
    if not flags:
        return []
    return [FLAGGED] + [f"  {f}" for f in flags]


FLAGGED = "Flagged in the proposal (may be secrets; check before approving):"


def _flags(rec: RunRecord) -> list[str]:
    return [c.reason for c in rec.tool_calls if c.tool == SECRET_SCAN]


def _flags_markdown(rec: RunRecord) -> list[str]:
    flags = _flags(rec)
    if not flags:
        return []
    return ["", f"**{FLAGGED}**", "", *(f"- {_code(f)}" for f in flags)]


def render_evidence(
    rec: RunRecord,
    patch: str,
    sections: Sequence[str | Section] = (),
    redact: Redact | None = None,
    verification: Sequence[str | Section] = (),
) -> str:
    """sections: tool-specific evidence (SQL results, browser steps), as Sections or as
    text already rendered; verification: the control plane's own checks, where it ran any."""
    return _redact(_evidence(rec, patch, sections, verification), redact)


def _evidence(
    rec: RunRecord,
    patch: str,
    sections: Sequence[str | Section],
    verification: Sequence[str | Section] = (),
) -> str:
    network = network_section(rec)
    setup = setup_section(rec)
    lines = [
        *([setup.body_text, ""] if setup else []),
        _tool_calls(rec),
        *([network.body_text] if network else []),
        "",
    ]
    contract = contract_section(rec)
    checks = [*verification, *verification_sections(rec)]
    for section in [*sections, *checks, *([contract] if contract else [])]:
        lines += [section_text(as_section(section)), ""]
    lines.append(model_line(rec))
    if (said := summary_section(rec)) is not None:
        lines.append(said.body_text)
    if rec.proposal is None:
        lines.append("Proposal: no changes.")
        return "\n".join(lines)
    pr = rec.proposal
    if (others := _without_files(pr)) is not None:
        lines.append(f"Proposal {pr.digest[:19]}: {others}, no files.")
        return "\n".join(lines)
    files = _files(pr)
    lines.append(
        f"Proposal {pr.digest[:19]}: {len(files)} file(s), +{pr.additions} -{pr.deletions}"
    )
    lines += [f"  {path}" for path in files]
    if pr.out_of_scope:
        lines.append("Left out (outside the write scope): " + ", ".join(pr.out_of_scope))
    lines += render_flags(rec)
    lines += ["", shown_patch(patch)]
    return "\n".join(lines)


BINARY_SHOWN = "(binary: a reviewer reads it in its family's evidence, e.g. Documents)"


def shown_patch(patch: str) -> str:
    """The patch as a reviewer reads it: a binary hunk (`GIT binary patch`, base85 that no
    one can review) is one line pointing at the evidence that shows the change; the stored
    patch, which apply uses, is left byte for byte as it is."""
    out: list[str] = []
    skipping = False
    for line in patch.rstrip().split("\n"):
        if line.startswith("diff --git "):
            skipping = False
        elif line == "GIT binary patch":
            skipping = True
            out.append(BINARY_SHOWN)
            continue
        if not skipping:
            out.append(line)
    return "\n".join(out)


def _files(pr: Proposal) -> list[str]:
    return [path for part in pr.of_kind(PATCH) for path in part.paths]


def _without_files(pr: Proposal) -> str | None:
    """What a proposal with no file patch holds, as its parts say it (e.g. "the held
    browser request above"); None when it has a patch, which is shown as a diff."""
    if pr.of_kind(PATCH):
        return None
    return "; ".join(part.summary or f"a {part.family} {part.kind}" for part in pr.parts)


def render_applied(applied: Sequence[AppliedPart] | Mapping[str, str] | None) -> list[str]:
    """What apply did, one line per part (a released request, a commit on a branch).
    A v1 record's `applied` mapping reads the same."""
    if isinstance(applied, Mapping):
        applied = [AppliedPart.model_validate(a) for a in upgrade_applied(dict(applied))]
    return [part.summary for part in applied or []]


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
    "contract_unmet": "stopped: the artifact contract is not met",
    "verify_failed": "stopped: verification failed on the proposal",
}


def render_pr_comment(
    rec: RunRecord,
    plan_text: str,
    patch: str,
    audit_head: str | None,
    sections: Sequence[str | Section] = (),
    redact: Redact | None = None,
    names: Mapping[str, str] | None = None,
    verification: Sequence[str | Section] = (),
) -> str:
    """The evidence comment on a pull request: one per job, edited as the run moves.

    names maps identity keys to the logins to show (the record's approvers' names are
    always used); people read logins, the record keeps ids. The proposal and the evidence
    sections are shown as they are; verification (the control plane's checks on the
    proposed tree) gets its own heading when there is any."""
    shown = {**record_names(rec), **(names or {})}
    return _redact(
        _pr_comment(rec, plan_text, patch, audit_head, sections, shown, verification), redact
    )


def _pr_comment(
    rec: RunRecord,
    plan_text: str,
    patch: str,
    audit_head: str | None,
    sections: Sequence[str | Section],
    names: Mapping[str, str],
    verification: Sequence[str | Section] = (),
) -> str:
    last = with_names(rec.transitions[-1].reason if rec.transitions else "", names)
    requester = with_names(rec.requester, names)
    plan = Section(
        title="Plan (grants, denials, gates, model; each with its rule)",
        body_text=with_names(plan_text, names),
        body_markdown=fenced(with_names(plan_text, names)),
        collapsed=True,
    )
    lines = [
        f"### agentplane: `{rec.job_name}` is {STATE_HEADLINE.get(rec.state, rec.state)}",
        f"Run `{rec.run_id}` on `{rec.commit[:12]}`, requested by @{requester}. {last}",
        "",
        section_markdown(plan),
        "",
    ]
    if (said := summary_section(rec)) is not None:
        lines += [section_markdown(said), ""]
    if (setup := setup_section(rec)) is not None:
        lines += [section_markdown(setup), ""]
    lines += [section_markdown(tool_calls_section(rec)), ""]
    if (network := network_section(rec)) is not None:
        lines += [section_markdown(network), ""]
    for section in sections:
        lines += [section_markdown(as_section(section)), ""]
    checks = [*verification, *verification_sections(rec)]
    if checks:
        lines += ["#### Verification", ""]
        for check in checks:
            lines += [section_markdown(as_section(check), heading="#####"), ""]
    if (contract := contract_section(rec)) is not None:
        lines += [section_markdown(contract), ""]
    if rec.state == "needs_clarification" and rec.question is not None:
        lines += [
            f"**The agent asks:** {rec.question.text}",
            "",
            "Answer with a comment: `/agentplane answer <your answer>`.",
            "",
        ]
    for c in rec.clarifications:
        lines.append(f"Asked: {c.question} Answered by @{with_names(c.by, names)}: {c.answer}")
    if rec.proposal is not None and (others := _without_files(rec.proposal)) is not None:
        lines.append(f"**Proposal** `{rec.proposal.digest[:19]}`: {others}.")
    elif rec.proposal is not None:
        pr = rec.proposal
        lines += [
            f"**Proposal** `{pr.digest[:19]}`: {len(_files(pr))} file(s), "
            f"+{pr.additions} -{pr.deletions}",
            *_flags_markdown(rec),
            "",
            section_markdown(
                Section(
                    title="Diff",
                    body_text=shown_patch(patch),
                    body_markdown=fenced(shown_patch(patch), "diff"),
                )
            ),
        ]
    if rec.applied:
        lines.append("Applied: " + "; ".join(render_applied(rec.applied)) + ".")
    lines += [
        "",
        f"{model_line(rec)}. "
        f"Audit head: `{audit_head or '(none)'}` (verify with `agentplane audit verify "
        f"--expect-head {audit_head or ''}`).",
    ]
    return "\n".join(lines)
