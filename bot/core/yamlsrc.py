"""YAML with source positions, so every error can name file, line, column and field.

PyYAML's node graph carries marks; we build plain Python values from it and keep
a map from each value's path to where it was written. Pydantic's error `loc`
is then looked up in that map.

Job files come from any pull request, so the reader is built for hostile input: a file
is read only up to MAX_BYTES, nests at most MAX_DEPTH collections deep and yields at
most MAX_NODES values however its aliases and merge keys multiply them (billion laughs);
only the plain JSON-like tags are read (no `!!python/...`, `!!binary`, custom tags).
Every refusal is a located SourceError, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from bot.core.errors import SourceError, ValidationFailed

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

MAX_BYTES = 256 * 1024
"""The largest job, policy or config file read (the shipped policy is under 10 KiB)."""
MAX_DEPTH = 32
"""Collections nested deeper than this are refused (policy nests about eight deep)."""
MAX_NODES = 20_000
"""Values one file may yield, each alias or merge counted every time it is expanded."""
MAX_EXPANDED = 1024 * 1024
"""Characters of scalar text one file may yield once its aliases are expanded."""


@dataclass(frozen=True)
class Bounds:
    """How much one file may hold; FILES are those of job, policy and config files."""

    bytes: int = MAX_BYTES
    depth: int = MAX_DEPTH
    nodes: int = MAX_NODES
    expanded: int = MAX_EXPANDED
    what: str = "job, policy and config files"


FILES = Bounds()

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"
ALLOWED_TAGS = frozenset(
    _TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "merge")
)
"""What a value may be: YAML's JSON-like core (dates too, so pydantic can name them)."""
_KINDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "timestamp": "a date",
    "date": "a date",
    "datetime": "a date",
    "NoneType": "null",
}


@dataclass(frozen=True)
class Located:
    """A YAML document as plain data plus the position of every key and item.
    `data` is None when the document is empty (nothing but comments or blanks)."""

    path: str
    data: Any
    positions: dict[Path_, tuple[int, int]]

    def where(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """Position of the deepest written prefix of loc (a missing field points at its parent)."""
        key = tuple(loc)
        while key and key not in self.positions:
            key = key[:-1]
        return self.positions.get(key, (1, 1))

    def error(self, loc: Sequence[str | int], message: str) -> SourceError:
        line, col = self.where(loc)
        return SourceError(self.path, line, col, dotted(loc), message)


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Refused(Exception):
    """A bound was hit while composing; carries where and why."""

    def __init__(self, node_or_mark: Any, message: str) -> None:
        super().__init__(message)
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        self.where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        self.message = message


class _BoundedComposer(Composer):
    """PyYAML's composer with a depth and a node count: its recursion would otherwise
    overflow the stack on `[[[[...` and its node graph grow with the file."""

    peek_event: Callable[[], Any]  # the parser's, mixed in beside this class

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._nodes = 0
        self.bounds = FILES

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._nodes += 1
        if self._nodes > self.bounds.nodes:
            raise _Refused(self.peek_event().start_mark, f"more than {self.bounds.nodes} values")
        self._depth += 1
        try:
            if self._depth > self.bounds.depth:
                raise _Refused(
                    self.peek_event().start_mark, f"nested deeper than {self.bounds.depth} levels"
                )
            node: yaml.Node = super().compose_node(parent, index)  # type: ignore[assignment]
            return node
        finally:
            self._depth -= 1


def _loader_class() -> type[Any]:
    # libyaml's event parser when PyYAML has it (four times faster on a large file); the
    # composer above stays ours either way, since libyaml's own has no depth bound.
    cyaml = getattr(yaml, "cyaml", None)  # absent when PyYAML was built without libyaml
    parser: type[Any] = getattr(cyaml, "CParser", None) or yaml.parser.Parser
    if parser is yaml.parser.Parser:

        class PyLoader(
            yaml.reader.Reader,
            yaml.scanner.Scanner,
            yaml.parser.Parser,
            _BoundedComposer,
            SafeConstructor,
            Resolver,
        ):
            def __init__(self, stream: str) -> None:
                yaml.reader.Reader.__init__(self, stream)
                yaml.scanner.Scanner.__init__(self)
                yaml.parser.Parser.__init__(self)
                _BoundedComposer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)

        return PyLoader

    class CLoader(_BoundedComposer, parser, SafeConstructor, Resolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            parser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return CLoader


_Loader = _loader_class()


def decode(path: str, data: bytes, bounds: Bounds = FILES) -> str:
    """File bytes as text for parse: at most bounds.bytes + 1 of them are kept (parse
    refuses the file if it is longer), and bytes that are not UTF-8 stay visible to parse,
    which says where they are (surrogate escapes), so no reader needs an error path of its
    own."""
    return data[: bounds.bytes + 1].decode("utf-8", errors="surrogateescape")


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _precheck(path: str, text: str, bounds: Bounds) -> None:
    size = len(text.encode("utf-8", errors="surrogateescape"))
    if size > bounds.bytes:
        raise ValidationFailed(
            [
                SourceError(
                    path,
                    1,
                    1,
                    "",
                    f"file is over {bounds.bytes // 1024} KiB: agentplane "
                    f"reads {bounds.what} only up to that size",
                )
            ]
        )
    for i, ch in enumerate(text):
        if "\udc80" <= ch <= "\udcff":
            line, col = _line_col(text, i)
            byte = ord(ch) - 0xDC00
            raise ValidationFailed(
                [
                    SourceError(
                        path,
                        line,
                        col,
                        "",
                        f"byte 0x{byte:02x} is not UTF-8: save the file as UTF-8",
                    )
                ]
            )
        if "\ud800" <= ch <= "\udfff":
            line, col = _line_col(text, i)
            raise ValidationFailed(
                [SourceError(path, line, col, "", "a lone surrogate is not text")]
            )


def _compose(path: str, text: str, bounds: Bounds) -> yaml.Node | None:
    loader = None
    try:
        loader = _Loader(text)  # libyaml reads the first bytes as it starts
        loader.bounds = bounds
        node: yaml.Node | None = loader.get_single_node()
        return node
    except _Refused as exc:
        raise ValidationFailed(
            [SourceError(path, exc.where[0], exc.where[1], "", exc.message)]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        if problem == "exceeded maximum nesting depth":  # libyaml's own bound, past ours
            raise ValidationFailed(
                [SourceError(path, line, col, "", f"nested deeper than {bounds.depth} levels")]
            ) from None
        if problem == "but found another document":
            problem = "a second document starts here: a file holds one YAML document (no `---`)"
        raise ValidationFailed(
            [SourceError(path, line, col, "", f"invalid YAML: {problem}")]
        ) from None
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        raise ValidationFailed(
            [SourceError(path, line, col, "", f"character #x{exc.character:04x} is not allowed")]
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationFailed([SourceError(path, 1, 1, "", f"invalid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()


def parse(path: str, text: str, bounds: Bounds = FILES) -> Located:
    """Parse one YAML document within bounds; every problem (syntax, duplicate keys, tags,
    a bound) becomes a located SourceError."""
    _precheck(path, text, bounds)
    node = _compose(path, text, bounds)
    if node is None:
        return Located(path, None, {(): (1, 1)})
    return _Builder(path, bounds).run(node)


class _Builder:
    """Plain values from the node graph, expanding aliases and merge keys within bounds."""

    def __init__(self, path: str, bounds: Bounds) -> None:
        self.path, self.bounds = path, bounds
        self.positions: dict[Path_, tuple[int, int]] = {}
        self.errors: list[SourceError] = []
        self.values = 0
        self.chars = 0
        self.active: set[int] = set()
        self.constructor = SafeConstructor()  # PyYAML's scalar resolution (ints, bools...)

    def run(self, node: yaml.Node) -> Located:
        self.positions[()] = _mark(node)
        try:
            data = self.build(node, ())
        except _Refused as exc:
            raise ValidationFailed(
                [SourceError(self.path, exc.where[0], exc.where[1], "", exc.message)]
            ) from None
        if self.errors:
            raise ValidationFailed(self.errors)
        return Located(self.path, data, self.positions)

    def fail(self, node: yaml.Node, at: Path_, message: str) -> None:
        line, col = _mark(node)
        self.errors.append(SourceError(self.path, line, col, dotted(at), message))

    def build(self, n: yaml.Node, at: Path_) -> Any:
        self.values += 1
        if self.values > self.bounds.nodes:
            raise _Refused(n, f"more than {self.bounds.nodes} values once aliases are expanded")
        if n.tag not in ALLOWED_TAGS:
            self.fail(
                n,
                at,
                f"tag {n.tag.replace(_TAG, '!!')!r} is not allowed: write plain "
                "text, numbers, booleans, lists and mappings",
            )
            return None
        if id(n) in self.active:
            raise _Refused(n, "an alias refers to the collection that contains it")
        if isinstance(n, yaml.ScalarNode):
            return self.scalar(n, at)
        self.active.add(id(n))
        try:
            if isinstance(n, yaml.SequenceNode):
                items = []
                for i, item in enumerate(n.value):
                    self.positions[(*at, i)] = _mark(item)
                    items.append(self.build(item, (*at, i)))
                return items
            if isinstance(n, yaml.MappingNode):
                return self.mapping(n, at)
            raise _Refused(n, f"a node of an unknown kind ({type(n).__name__})")
        finally:
            self.active.discard(id(n))

    def scalar(self, n: yaml.ScalarNode, at: Path_) -> Any:
        self.chars += len(n.value)
        if self.chars > self.bounds.expanded:
            raise _Refused(
                n, f"more than {self.bounds.expanded // 1024} KiB of text once aliases are expanded"
            )
        try:
            return self.constructor.construct_object(n)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            kind = _KINDS.get(n.tag.replace(_TAG, ""), "a value")
            reason = str(getattr(exc, "problem", None) or exc).splitlines()[0][:200]
            self.fail(n, at, f"cannot read {n.value[:40]!r} as {kind}: {reason}")
            return None

    def key(self, node: yaml.Node, at: Path_) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in ALLOWED_TAGS:
            self.fail(node, at, "a key must be plain text, not a list, mapping or tagged value")
            return None
        value = self.scalar(node, at)
        if not isinstance(value, str):
            kind = _KINDS.get(type(value).__name__, "a value")
            problem = f"key {node.value!r} is read as {kind}: quote it" if node.value else ""
            self.fail(node, at, problem or "a key must not be empty")
            return None
        return value

    def mapping(self, n: yaml.MappingNode, at: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges = [(k, v) for k, v in n.value if k.tag == _MERGE]
        for key_node, source in merges:
            # `<<: *defaults` (or a list of them): keys written here win, then earlier sources.
            sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    self.fail(
                        key_node,
                        at,
                        "`<<` merges a mapping or a list of mappings (an alias such as *defaults)",
                    )
                    continue
                for k, v in self.build(src, at).items():
                    out.setdefault(k, v)
        written: set[str] = set()
        for key_node, value_node in n.value:
            if key_node.tag == _MERGE:
                continue
            key = self.key(key_node, at)
            if key is None:
                continue
            child = (*at, key)
            if key in written:
                self.fail(key_node, child, "duplicate key")
                continue
            written.add(key)
            self.positions[child] = _mark(key_node)
            out[key] = self.build(value_node, child)
        return out


def validate(
    doc: Located,
    model: type[M],
    *,
    prepare: Callable[[Any], Any] | None = None,
) -> M:
    """Validate doc against model; every pydantic error becomes a located SourceError."""
    if doc.data is None:
        raise ValidationFailed([doc.error((), "the file is empty: expected a mapping of fields")])
    data = prepare(doc.data) if prepare else doc.data
    if not isinstance(data, dict):
        raise ValidationFailed([doc.error((), "expected a mapping at the top of the file")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            errors.append(doc.error(_user_loc(loc), _message(err)))
        raise ValidationFailed(errors) from None


def _user_loc(loc: Path_) -> Path_:
    # Pydantic inserts union and validator tags (`function-after[...]`, `literal[...]`)
    # into loc; only the keys and indexes the user wrote belong in the message.
    return tuple(p for p in loc if isinstance(p, int) or "[" not in p)


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see `agentplane schema`)"
    msg: str = err["msg"].removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else kind
