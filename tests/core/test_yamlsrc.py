"""The YAML reader under hostile input: each class YAML invites is refused with a located
error, within the reader's caps on size, depth and expansion, never with a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.core.errors import ValidationFailed
from bot.core.job import parse_job
from bot.core.policy import merge_policy, parse_config
from bot.core.yamlsrc import MAX_BYTES, MAX_DEPTH, MAX_NODES, decode, parse

PATH = ".agentplane/jobs/x.yaml"


def refused(text: str, path: str = PATH) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        parse_job(path, text)
    return [e.render() for e in info.value.errors]


def laughs(levels: int, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + f"\nprompt: *l{levels - 1}\n"


BILLION_LAUGHS = laughs(9)  # 9**9 = 387 million strings once expanded


def test_billion_laughs_stop_at_the_expansion_cap() -> None:
    (err,) = refused(BILLION_LAUGHS)
    assert f"more than {MAX_NODES} values once aliases are expanded" in err
    assert err.startswith(f"{PATH}:")


def test_aliases_of_one_long_string_stop_at_the_text_cap() -> None:
    text = f"a: &a '{'x' * 60000}'\nscope: {{filesystem: {{read: [{', '.join(['*a'] * 40)}]}}}}\n"
    (err,) = refused(text)
    assert "KiB of text once aliases are expanded" in err


def test_a_few_aliases_are_fine() -> None:
    text = "scope:\n  filesystem:\n    read: &src [src/**]\n    write: *src\n"
    assert parse_job(PATH, text).scope.filesystem.write == ["src/**"]


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    assert refused("tools: &a [*a]\n") == [
        f"{PATH}:1:8: an alias refers to the collection that contains it"
    ]
    (err,) = refused("scope: &s {filesystem: *s}\n")
    assert "contains it" in err


def test_an_undefined_alias_is_located() -> None:
    assert refused("tools: *nope\n") == [f"{PATH}:1:8: invalid YAML: found undefined alias 'nope'"]


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 100_000])
def test_deep_nesting_stops_at_the_depth_cap(opener: str, levels: int) -> None:
    text = "tools: " + opener * levels if opener != "- " else opener * levels + "x\n"
    (err,) = refused(text[: MAX_BYTES - 1])
    assert f"nested deeper than {MAX_DEPTH} levels" in err


def test_nesting_at_the_cap_is_read() -> None:
    depth = MAX_DEPTH - 1
    doc = parse("p.yaml", "a: " + "[" * depth + "]" * depth + "\n")
    assert isinstance(doc.data["a"], list)


def test_a_file_over_the_size_cap_is_refused_before_it_is_parsed() -> None:
    text = "prompt: '" + "x" * MAX_BYTES + "'\n"
    assert refused(text) == [
        f"{PATH}:1:1: file is over {MAX_BYTES // 1024} KiB: agentplane reads job, policy and "
        "config files only up to that size"
    ]


def test_a_long_scalar_under_the_cap_is_read() -> None:
    assert parse_job(PATH, "prompt: '" + "x" * 200_000 + "'\n").prompt == "x" * 200_000


def test_bytes_that_are_not_utf8_are_located() -> None:
    text = decode(PATH, b"name: x\nprompt: caf\xe9 au lait\n")
    assert refused(text) == [f"{PATH}:2:12: byte 0xe9 is not UTF-8: save the file as UTF-8"]


def test_decode_keeps_at_most_one_byte_past_the_cap() -> None:
    assert len(decode(PATH, b"x" * (3 * MAX_BYTES))) == MAX_BYTES + 1


@pytest.mark.parametrize("char", ["\x00", "\x07", "\ufffe"])
def test_characters_yaml_forbids_are_located(char: str) -> None:
    (err,) = refused(f"name: x\nprompt: a{char}b\n")
    assert err.startswith(f"{PATH}:2:10: character #x")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "{}\n"])
def test_an_empty_job_file_is_not_a_job(text: str) -> None:
    (err,) = refused(text)
    assert err.startswith(f"{PATH}:")
    assert "empty" in err


@pytest.mark.parametrize(
    "text", ["just words\n", "- a\n- b\n", "42\n", "null\n", "'quoted'\n", "!!str x\n"]
)
def test_a_document_that_is_not_a_mapping_is_not_a_job(text: str) -> None:
    (err,) = refused(text)
    assert err.endswith("expected a mapping at the top of the file") or "empty" in err


def test_a_stream_of_several_documents_is_refused_at_the_second() -> None:
    assert refused("prompt: a\n---\nprompt: b\n") == [
        f"{PATH}:2:1: invalid YAML: a second document starts here: a file holds one YAML "
        "document (no `---`)"
    ]


def test_duplicate_keys_are_located_at_every_depth() -> None:
    assert refused("scope:\n  filesystem:\n    read: [a]\n    read: [b]\n") == [
        f"{PATH}:4:5: scope.filesystem.read: duplicate key"
    ]


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object:os.system",
        "!!python/object/apply:os.system",
        "!!python/name:os.system",
        "!!binary",
        "!!set",
        "!!omap",
        "!!pairs",
        "!custom",
        "!<tag:example.com,2000:app/x>",
    ],
)
def test_tags_beyond_plain_data_are_refused(tag: str) -> None:
    (err,) = refused(f"prompt: {tag} aGk=\n")
    assert err.startswith(f"{PATH}:1:9: prompt: tag ")
    assert "is not allowed" in err


def test_core_tags_read_as_written() -> None:
    job = parse_job(PATH, "prompt: !!str 12\nbudget: {tool_calls: !!int '3'}\n")
    assert job.prompt == "12" and job.budget.tool_calls == 3


@pytest.mark.parametrize(
    ("value", "kind"),
    [("1" * 5000, "an integer"), ("2001-13-45", "a date")],
)
def test_scalars_python_cannot_build_are_located(value: str, kind: str) -> None:
    (err,) = refused(f"budget:\n  tool_calls: {value}\n")
    assert err.startswith(f"{PATH}:2:15: budget.tool_calls: cannot read ")
    assert f"as {kind}" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a, b]\n: 1\n", "a key must be plain text"),
        ("? {a: b}\n: 1\n", "a key must be plain text"),
        ("1: x\n", "key '1' is read as an integer: quote it"),
        ("yes: x\n", "key 'yes' is read as a boolean: quote it"),
        ("null: x\n", "key 'null' is read as null: quote it"),
        ("? \n: x\n", "a key must not be empty"),
        ("!!binary aGk=: x\n", "a key must be plain text"),
    ],
)
def test_keys_that_are_not_text_are_located(text: str, message: str) -> None:
    (err,) = refused(text)
    assert err.startswith(f"{PATH}:1:") and message in err


def test_merge_keys_merge_and_what_is_written_wins() -> None:
    text = (
        "scope:\n"
        "  filesystem:\n"
        "    <<: &fs {read: [docs/**], write: [docs/**]}\n"
        "    write: [docs/notes/**]\n"
    )
    fs = parse_job(PATH, text).scope.filesystem
    assert fs.read == ["docs/**"] and fs.write == ["docs/notes/**"]


def test_a_merged_field_error_points_at_where_it_was_written() -> None:
    text = "x: &bad {filesystem: {wirte: [a]}}\n"
    doc = parse(PATH, text + "scope:\n  <<: *bad\n")
    assert doc.where(("scope", "filesystem", "wirte")) == (1, 23)


@pytest.mark.parametrize("value", ["x", "[a, b]", "[{a: 1}, c]"])
def test_a_merge_of_something_not_a_mapping_is_located(value: str) -> None:
    errors = refused(f"scope:\n  <<: {value}\n")
    assert errors and all("`<<` merges a mapping or a list of mappings" in e for e in errors)
    assert all(e.startswith(f"{PATH}:2:3: scope: ") for e in errors)


def test_merge_keys_count_against_the_expansion_cap() -> None:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    for i in range(1, 9):
        keys = ", ".join(f"k{j}: {{<<: *m{i - 1}}}" for j in range(8))
        lines.append(f"m{i}: &m{i} {{{keys}}}")
    (err,) = refused("\n".join(lines) + "\n")
    assert "once aliases are expanded" in err


def test_policies_and_configs_share_the_bounds() -> None:
    with pytest.raises(ValidationFailed) as info:
        merge_policy([("policies/a.yaml", BILLION_LAUGHS), ("policies/b.yaml", "groups: !x 1\n")])
    errors = [e.render() for e in info.value.errors]
    assert len(errors) == 2 and "once aliases are expanded" in errors[0]
    assert errors[1].startswith("policies/b.yaml:1:9: groups: tag '!x' is not allowed")
    with pytest.raises(ValidationFailed) as info:
        parse_config(".agentplane/config.yaml", "tools: " + "[" * 1000)
    assert "nested deeper" in str(info.value)
    with pytest.raises(ValidationFailed, match="empty"):
        parse_config(".agentplane/config.yaml", "")


WORST = {
    "billion laughs": BILLION_LAUGHS,
    "brackets to the size cap": "tools: " + "[" * (MAX_BYTES - 8),
    "dense mapping to the size cap": "".join(
        f"k{i}: [a, {{c: d}}]\n" for i in range(MAX_BYTES // 20)
    )[:MAX_BYTES],
    "one scalar to the size cap": "prompt: '" + "x" * (MAX_BYTES - 11) + "'\n",
    "aliases of a long scalar": f"a: &a '{'x' * 60000}'\nb: [{', '.join(['*a'] * 200)}]\n",
    "merges of merges": "\n".join(
        ["m0: &m0 {a: 1, b: 2, c: 3, d: 4}"]
        + [f"m{i}: &m{i} {{x: {{<<: *m{i - 1}}}, y: {{<<: *m{i - 1}}}}}" for i in range(1, 30)]
    ),
}

_MEASURE = """
import json, resource, sys
from bot.core.errors import ValidationFailed
from bot.core.job import parse_job

def rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

cases = json.load(sys.stdin)
parse_job("warm.yaml", "prompt: x\\n")
with open("/proc/self/statm") as f:
    pages = int(f.read().split()[0])
# Address space capped at what is mapped now plus the budget: a parse that tried to
# build the expanded document would die of MemoryError here, not swap the machine.
limit = pages * resource.getpagesize() + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
before, out = rss_kib(), {}
for name, text in cases.items():
    try:
        parse_job("x.yaml", text)
        out[name] = "valid"
    except ValidationFailed as exc:
        out[name] = exc.errors[0].render()
out["grew_kib"] = rss_kib() - before
print(json.dumps(out))
"""


def test_worst_cases_are_judged_in_bounded_memory() -> None:
    """Files at the reader's caps, parsed in a child whose address space may grow by 256 MiB
    only (RLIMIT_AS): each ends in a verdict, and the peak resident size grows by less than
    that, where the expanded billion laughs alone would need gigabytes."""
    budget = 256 << 20
    assert all(len(t.encode()) <= MAX_BYTES for t in WORST.values())
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(budget)],
        input=json.dumps(WORST),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out.pop("grew_kib") * 1024 < budget
    assert out.pop("one scalar to the size cap") == "valid"
    for name, verdict in out.items():
        assert verdict.startswith("x.yaml:"), (name, verdict)
