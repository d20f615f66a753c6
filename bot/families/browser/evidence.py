"""What a reviewer reads for a browser run: numbered steps, blocked requests, the held
request with its gate screenshot, and how to open the trace."""

from __future__ import annotations

from collections.abc import Mapping

from bot.families.browser.model import BrowserRun


def gate_warnings(run: BrowserRun) -> list[str]:
    """One warning per gated rule no element matched on the pages the run visited."""
    if run.gated_seen is None or not run.steps:
        return []
    pages = len(run.pages_seen)
    out = []
    for i, rule in enumerate(run.gated):
        if i in run.gated_seen:
            continue
        what = " ".join(
            p for p in (rule.role or "element", repr(rule.name) if rule.name else "") if p
        )
        out.append(
            f"Warning: gated[{i}] ({rule.action}: {what}) matched no element on the "
            f"{pages} page(s) this run visited, so it gated nothing here; compare its role "
            "and name with what `read` shows"
        )
    return out


def render_browser_evidence(
    run: BrowserRun, run_id: str, links: Mapping[str, str] | None = None
) -> str:
    """Plain text for the terminal and (inside a text block) the PR comment.

    links maps artifact names (gate.png, trace.zip) to URLs where the door uploaded them.
    """
    links = links or {}
    lines = [
        f"Logged in: {login.describe()}; the model never saw the password" for login in run.logins
    ]
    lines.append(f"Browser steps ({len(run.steps)}), domains {', '.join(run.domains) or '(none)'}:")
    lines += [f"  {s.n:>3}. {s.describe()}" for s in run.steps]
    lines += gate_warnings(run)
    if run.sandbox:
        lines.append(f"Chromium ran in {run.sandbox}; its network was the egress proxy.")
    if run.blocked:
        lines.append(f"Blocked outside the allowlist ({len(run.blocked)}):")
        lines += [f"  step {b.step}: {b.method} {b.url} ({b.resource_type})" for b in run.blocked]
    if run.gate_events:
        lines.append(
            f"Refused at the network gate ({len(run.gate_events)}): state-changing requests "
            "the browser sent past its routing; none reached the site:"
        )
        lines += [f"  {e.describe()}" for e in run.gate_events]
    p = run.pending
    if p is not None:
        shot = links.get(p.screenshot, f"artifact {p.screenshot}")
        lines += [
            f"Held for approval at step {p.step} ({p.action}, {p.rule}): {p.reason}",
            f"  request   {p.method} {p.url}",
            f"  body      sha256:{p.body_sha256} ({p.body_size} bytes)"
            if p.body_sha256
            else "  body      (none)",
            f"  on page   {p.page_url}",
            f"  screenshot {shot}",
        ]
        lines += [
            f"  field     {k} = (issued per page load; matched by name at apply)"
            if k in p.volatile_fields
            else f"  field     {k} = (a password field: masked; the body digest binds it)"
            if k in p.secret_fields
            else f"  field     {k} = {v!r}"
            for k, v in p.form or []
        ]
        lines.append("  Apply replays the steps and sends exactly this request, or nothing.")
    trace = links.get("trace.zip")
    lines.append(
        f"Trace: agentplane browser trace {run_id} --out trace.zip && "
        "playwright show-trace trace.zip" + (f"  ({trace})" if trace else "")
    )
    return "\n".join(lines)
