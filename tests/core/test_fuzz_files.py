"""Generated job files, policies and repo configs (hypothesis, seeded): whatever the bytes,
each file is judged valid or refused with errors that name the file and a line inside it,
never with a traceback. The suite prints its figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.errors import ValidationFailed
from bot.core.job import parse_job
from bot.core.policy import merge_policy, parse_config
from bot.core.yamlsrc import decode
from tests.support.fuzzing import SEEDED, Figures, located

FIELDS = [
    # job
    "name", "job_type", "repo", "prompt", "tools", "scope", "credentials",
    "approval_required_for", "artifact_contract", "verify", "budget", "schedule", "model",
    "data_sensitivity", "latency", "filesystem", "read", "write", "network", "allow",
    "browser", "domains", "gated", "sql", "connection", "usd", "minutes", "tool_calls",
    "cron", "timezone", "mode", "action", "role",
    # policy and config
    "groups", "roles", "people", "approvals", "job_types", "code", "doc", "run_by", "gates",
    "id", "actions", "approvers", "any_of", "all_of", "count", "of", "default_approvers",
    "owners", "protected_paths", "budgets", "default", "max", "models", "routes", "when",
    "use", "model_list", "model_name", "litellm_params", "cleared_for", "clarify",
    "sql_connections", "mcp_servers", "command", "artifact_contracts", "audit", "signers",
    "key", "quotas", "backend", "private_networks", "doors", "signed",
]  # fmt: skip
WORDS = [
    "filesystem", "shell", "browser", "code", "sql", "write", "submit", "*", "group:x",
    "role:y", "src/**", "../etc", "/abs", "0 6 * * 1-5", "99 99 99 99 99", "Europe/Berlin",
    "Mars/Base", "postgres://u:p@h/db", "ed25519:AAAA", "10.0.0.0/8", "nonsense", "",
]  # fmt: skip
FRAGMENTS = [
    "&a ", "*a", "*b", "<<: ", "<<: *a", "!!python/object:os.system ", "!foo ", "!!binary ",
    "!!set ", "? ", ": ", "- ", "[", "]", "{", "}", ",", "'", '"', "|", ">", "#", "%YAML 1.1\n",
    "---\n", "...\n", "\t", "\n", "  ", "\x00", "\ufeff", "\udcff", "1" * 5000, "2001-13-45",
    "~", "null", "yes", ".nan", "0x_", "\\u", "\u2028", "\U0001f600",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True),
    st.sampled_from(WORDS + FIELDS),
    st.text(max_size=40),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=40,
)
mappings = st.dictionaries(keys, values, max_size=8)


@st.composite
def spliced(draw: st.DrawFn) -> str:
    """A dumped document with hostile fragments spliced in at chosen places."""
    text = yaml.safe_dump(draw(mappings), allow_unicode=True, sort_keys=False)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
    return text


jobs = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.text(max_size=80),
        "job_type": st.sampled_from(["code", "sql", "browser", "doc", "coding", "bogus"]),
        "tools": st.lists(st.sampled_from(["filesystem", "shell", "browser", "fs", "hammer"])),
        "scope": st.fixed_dictionaries(
            {},
            optional={
                "filesystem": st.fixed_dictionaries({"write": st.lists(st.sampled_from(WORDS))})
            },
        ),
        "budget": st.fixed_dictionaries(
            {}, optional={"usd": st.floats(-1, 10), "tool_calls": st.integers(-1, 100)}
        ),
        "schedule": st.sampled_from(["0 6 * * 1-5", "*/15 * * * *", "every day"]),
    },
)
"""Near-valid jobs: the generator reaches files that validate, not only refusals."""

documents = st.one_of(
    jobs.map(yaml.safe_dump),
    mappings.map(lambda m: yaml.safe_dump(m, allow_unicode=True)),
    spliced(),
    st.text(alphabet=st.sampled_from([*"[]{}:,-&*!|>'\"#%@? \n\tab<1"]), max_size=300),
    st.binary(max_size=300).map(lambda b: decode("f.yaml", b)),
    st.lists(st.sampled_from(FRAGMENTS + FIELDS), max_size=30).map("".join),
)


@pytest.fixture(scope="module")
def figures(pytestconfig: pytest.Config) -> Iterator[dict[str, Figures]]:
    found: dict[str, Figures] = {}
    yield found
    for fig in found.values():
        fig.report(pytestconfig)


def judge(fig: Figures, path: str, text: str, check: Callable[[], Any]) -> None:
    with fig.case():
        try:
            check()
            fig.accepted += 1
        except ValidationFailed as exc:
            fig.rejected += 1
            assert exc.errors, "refused without an error"
            for err in exc.errors:
                why = located(err, err.path if path == "*" else path, text)
                if why:
                    fig.failures.append(f"{err.render()[:200]}: {why}")
            assert not fig.failures, fig.failures[0]


@settings(SEEDED, max_examples=200)
@given(text=documents)
def test_generated_job_files(figures: dict[str, Figures], text: str) -> None:
    fig = figures.setdefault("job files", Figures("job files"))
    path = ".agentplane/jobs/fuzz.yaml"
    judge(fig, path, text, lambda: parse_job(path, text))


@settings(SEEDED, max_examples=100)
@given(texts=st.lists(documents, min_size=1, max_size=3))
def test_generated_policies(figures: dict[str, Figures], texts: list[str]) -> None:
    fig = figures.setdefault("policies", Figures("policies"))
    files = [(f"policies/p{i}.yaml", t) for i, t in enumerate(texts)]
    with fig.case():
        try:
            merge_policy(files)
            fig.accepted += 1
        except ValidationFailed as exc:
            fig.rejected += 1
            by_path = dict(files)
            for err in exc.errors:
                why = located(err, err.path, by_path.get(err.path, ""))
                if err.path not in by_path or why:
                    fig.failures.append(f"{err.render()[:200]}: {why or 'names no policy file'}")
            assert not fig.failures, fig.failures[0]


@settings(SEEDED, max_examples=100)
@given(text=documents)
def test_generated_repo_configs(figures: dict[str, Figures], text: str) -> None:
    fig = figures.setdefault("repo configs", Figures("repo configs"))
    path = ".agentplane/config.yaml"
    judge(fig, path, text, lambda: parse_config(path, text))


def test_valid_files_are_among_the_generated() -> None:
    """The generator reaches files that validate too, so 'refused' is not all it tests."""
    assert parse_job("j.yaml", yaml.safe_dump({"prompt": "x", "tools": ["shell"]})).tools
